/* unit.h: the smallest test harness: checks that print what was expected and what came. */
#ifndef SIDEMETER_UNIT_H
#define SIDEMETER_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		unit_checks++;                                                             \
		if (!(cond)) {                                                             \
			unit_failures++;                                                   \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

#define CHECK_EQ_U(what, want, got)                                                        \
	CHECK((unsigned long long)(want) == (unsigned long long)(got),                     \
	    "%s: expected %llu, got %llu", what, (unsigned long long)(want),              \
	    (unsigned long long)(got))

static inline int unit_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
	return unit_failures ? 1 : 0;
}

#endif
