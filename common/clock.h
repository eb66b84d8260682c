/* clock.h - the clocks Tender reads, in one place (a seam for tests that
 * need to control time, and one definition of "now"). */
#ifndef TN_CLOCK_H
#define TN_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and intervals. */
uint64_t tn_clock_ms(void);

#endif
