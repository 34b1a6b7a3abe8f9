# Thread control, cimportable: kernels cimport these names and build with or without OpenMP.
# Must match cydrop/_openmp.pyx. The shim mirrors the #ifdef _OPENMP wrapper of scikit-learn's
# _openmp_helpers.pxd.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CYDROP_OPENMP_ENABLED 1
    #else
    #define CYDROP_OPENMP_ENABLED 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_num_procs(void) { return 1; }
    static inline int omp_get_thread_num(void) { return 0; }
    static inline int omp_get_num_threads(void) { return 1; }
    #endif
    """
    bint CYDROP_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil


# The one place that turns a user's n_threads into a thread count (see _openmp.pyx); a cpdef so
# the Cython fast paths call it in C, with no Python-level import or lookup.
cpdef int effective_n_threads(object n_threads=*) except -1
