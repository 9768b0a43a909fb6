/* dump.h: the periodic summary line on stdout (the container log), as text or JSON.  Its
 * fields come from the metric table (include/metric_table.h). */
#ifndef SIDEMETER_DUMP_H
#define SIDEMETER_DUMP_H

#include <stdint.h>

/* Start counting the first interval at now. */
void dump_init(int64_t now);

/* Write one line covering the interval that ends now; the caller then starts the next
 * with aggregate_rotate(). */
void dump_write(int64_t now);

#endif
