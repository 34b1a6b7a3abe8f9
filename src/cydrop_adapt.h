/*
 * cydrop_adapt.h -- the load feedback of the chunk runner (cydrop/_parallel.pyx).
 *
 * Must match the declarations in cydrop/_parallel.pyx.
 *
 * A parallel region waits at its end for every thread of its team. On a busy machine the OS may
 * run a woken worker late (behind another process on its core), and the caller then waits for
 * it: a call on two threads can take several times as long as on one. The runner therefore times
 * every parallel region and each thread's share of it. From the fastest thread's time per task
 * it estimates what the whole call would have taken on one thread; a region slower than
 * CYDROP_ADAPT_LOSS times that estimate has lost to the serial loop. One loss is only a
 * suspicion: the first region after the workers went to sleep pays their wake-up even on a quiet
 * machine, so the next region (its workers awake) decides. A second loss in a row sends the runner
 * serial for a while (the backoff), then it tries a team again. The backoff doubles with every
 * further confirmed loss, from CYDROP_ADAPT_MIN_NS to CYDROP_ADAPT_MAX_NS, and a region that
 * wins resets it. On a quiet machine regions win (two threads take about half the estimate), so
 * nothing changes there. Under load, calls run serially, and only the two probes per backoff
 * period pay for a late worker.
 *
 * This decides only WHERE tasks run, never what they compute: results are the same either way.
 * The state is process-wide. It is read and written with relaxed atomics: concurrent callers
 * may race on it, but any interleaving leaves a valid state.
 */
#ifndef CYDROP_ADAPT_H
#define CYDROP_ADAPT_H

#include <stdint.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <time.h>
#endif

#define CYDROP_ADAPT_LOSS 0.95                /* region / serial estimate above this: lost */
#define CYDROP_ADAPT_MIN_NS 50000000LL        /* first backoff after a loss: 50 ms */
#define CYDROP_ADAPT_MAX_NS 1000000000LL      /* longest: at most one probe a second under load */

/* Nanoseconds on a monotonic clock. */
static inline int64_t cydrop_now_ns(void)
{
#if defined(_WIN32)
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (int64_t)((double)c.QuadPart * (1e9 / (double)f.QuadPart));
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
#endif
}

/* The process-wide state: serial until `serial_until` (ns of cydrop_now_ns), the next backoff,
 * whether feedback is on, counters for tests and reports, and whether the last region lost. */
typedef struct {
    int64_t serial_until, backoff, enabled, regions, losses, serial_calls, suspect;
} cydrop_adapt_state;

static cydrop_adapt_state cydrop_adapt = {0, CYDROP_ADAPT_MIN_NS, 1, 0, 0, 0, 0};

#if defined(__GNUC__) || defined(__clang__)
#define CYDROP_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define CYDROP_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define CYDROP_BUMP(p) ((void)__atomic_add_fetch((p), 1, __ATOMIC_RELAXED))
#else   /* MSVC: aligned 64-bit loads and stores on x64 are single instructions */
#define CYDROP_LOAD(p) (*(volatile int64_t *)(p))
#define CYDROP_STORE(p, v) (*(volatile int64_t *)(p) = (v))
#define CYDROP_BUMP(p) ((void)(++*(volatile int64_t *)(p)))
#endif

/* Whether a call that the work policy would run on a team should run serially now. */
static inline int cydrop_adapt_serial(int64_t now)
{
    if (!CYDROP_LOAD(&cydrop_adapt.enabled) || now >= CYDROP_LOAD(&cydrop_adapt.serial_until))
        return 0;
    CYDROP_BUMP(&cydrop_adapt.serial_calls);
    return 1;
}

/* Record one parallel region: it took `region` ns, and the call's serial estimate is
 * `serial_estimate` ns. Returns 1 if the runner backs off (this region and the one before it
 * lost), else 0. */
static inline int cydrop_adapt_record(int64_t region, double serial_estimate, int64_t now)
{
    int64_t backoff;
    CYDROP_BUMP(&cydrop_adapt.regions);
    if (!((double)region > CYDROP_ADAPT_LOSS * serial_estimate)) {
        CYDROP_STORE(&cydrop_adapt.suspect, 0);
        CYDROP_STORE(&cydrop_adapt.backoff, CYDROP_ADAPT_MIN_NS);
        return 0;
    }
    CYDROP_BUMP(&cydrop_adapt.losses);
    if (!CYDROP_LOAD(&cydrop_adapt.suspect)) {     /* a first loss: the next region decides */
        CYDROP_STORE(&cydrop_adapt.suspect, 1);
        return 0;
    }
    CYDROP_STORE(&cydrop_adapt.suspect, 0);
    backoff = CYDROP_LOAD(&cydrop_adapt.backoff);
    CYDROP_STORE(&cydrop_adapt.serial_until, now + backoff);
    backoff = 2 * backoff < CYDROP_ADAPT_MAX_NS ? 2 * backoff : CYDROP_ADAPT_MAX_NS;
    CYDROP_STORE(&cydrop_adapt.backoff, backoff);
    return 1;
}

#endif /* CYDROP_ADAPT_H */
