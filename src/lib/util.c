/* util.c — see util.h. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tly_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian): the
 * era-based conversion of Howard Hinnant's date algorithms. gmtime_r and
 * strftime cost a third of an export line; this is a few divisions. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yoe, doe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static char *digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

char *tly_time_fmt(int64_t ms, char buf[32])
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	unsigned sod = (unsigned)(secs - days * 86400), msec = (unsigned)(ms - secs * 1000);
	unsigned mon, day;
	int64_t year;
	char *p = buf;

	civil_from_days(days, &year, &mon, &day);
	if (year < 0 || year > 9999) { /* outside RFC 3339: the year in full, as strftime did */
		char tmp[64];
		int n = snprintf(tmp, sizeof(tmp), "%lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
				 (long long)year, mon, day, sod / 3600, sod / 60 % 60, sod % 60, msec);
		n = n < 0 ? 0 : n > 31 ? 31 : n;
		memcpy(buf, tmp, (size_t)n);
		buf[n] = '\0';
		return buf;
	}
	p = digits(p, (unsigned)year, 4);
	*p++ = '-';
	p = digits(p, mon, 2);
	*p++ = '-';
	p = digits(p, day, 2);
	*p++ = 'T';
	p = digits(p, sod / 3600, 2);
	*p++ = ':';
	p = digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = digits(p, sod % 60, 2);
	*p++ = '.';
	p = digits(p, msec, 3);
	*p++ = 'Z';
	*p = '\0';
	return buf;
}

static void *oom(size_t n)
{
	fprintf(stderr, "tally: out of memory (%zu bytes)\n", n);
	abort();
}

void *tly_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *tly_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *tly_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *tly_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(tly_xmalloc(n), s, n);
}

size_t tly_utf8_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}
