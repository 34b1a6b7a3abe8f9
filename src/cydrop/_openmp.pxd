# OpenMP shim: kernels cimport these names and build with or without OpenMP.
# Mirrors the #ifdef _OPENMP wrapper of scikit-learn's _openmp_helpers.pxd.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CYDROP_OPENMP_ENABLED 1
    #else
    #define CYDROP_OPENMP_ENABLED 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_num_procs(void) { return 1; }
    #endif
    """
    bint CYDROP_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
