/*
 * csvread.c - streaming RFC 4180 CSV reader (see csvread.h).
 */
#include "quality/csvread.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void tly__qerr_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int tly__utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t need;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i - 1 < need)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			unsigned cc = p[i + k];

			if ((cc & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (cc & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

int tly_csv_init(struct tly_csv *csv, FILE *fp, size_t field_max, size_t fields_max)
{
	memset(csv, 0, sizeof(*csv));
	csv->fp = fp;
	csv->field_max = field_max ? field_max : TLY_CSV_FIELD_MAX_DEFAULT;
	csv->fields_max = fields_max ? fields_max : TLY_CSV_FIELDS_MAX_DEFAULT;
	if (csv->fields_max > SIZE_MAX / 2 / (csv->field_max + 1))
		return TLY_Q_ENOMEM;
	csv->buf = malloc(csv->fields_max * (csv->field_max + 1));
	csv->start = calloc(csv->fields_max, sizeof(*csv->start));
	csv->len = calloc(csv->fields_max, sizeof(*csv->len));
	csv->next_line = 1;
	if (csv->buf == NULL || csv->start == NULL || csv->len == NULL) {
		tly_csv_release(csv);
		return TLY_Q_ENOMEM;
	}
	return TLY_Q_OK;
}

void tly_csv_release(struct tly_csv *csv)
{
	free(csv->buf);
	free(csv->start);
	free(csv->len);
	csv->buf = NULL;
	csv->start = NULL;
	csv->len = NULL;
	csv->nfields = 0;
}

const char *tly_csv_field(const struct tly_csv *csv, size_t i, size_t *len)
{
	if (len != NULL)
		*len = csv->len[i];
	return csv->buf + csv->start[i];
}

unsigned long tly_csv_line(const struct tly_csv *csv)
{
	return csv->line;
}

/* Next byte: first the ones read while looking for a BOM, then the stream. */
static inline int next_byte(struct tly_csv *csv)
{
	if (csv->ipend < csv->npend)
		return csv->pend[csv->ipend++];
	return getc_unlocked(csv->fp);
}

/* Skips a UTF-8 BOM if the stream starts with one; keeps other bytes. */
static void skip_bom(struct tly_csv *csv)
{
	static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
	int n = 0;

	while (n < 3) {
		int c = getc_unlocked(csv->fp);

		if (c == EOF)
			break;
		csv->pend[n++] = (unsigned char)c;
		if (c != bom[n - 1])
			break;
	}
	csv->npend = n;
	csv->ipend = (n == 3 && memcmp(csv->pend, bom, 3) == 0) ? 3 : 0;
}

enum { ST_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_IN_QUOTED };

int tly_csv_read(struct tly_csv *csv, char *err, size_t errlen)
{
	size_t cap = csv->field_max;
	size_t pos = 0;        /* write position in buf */
	size_t flen = 0;       /* bytes in the current field */
	int state = ST_START;
	int rc = TLY_Q_OK;
	int any = 0;           /* saw any byte of this record */
	FILE *fp = csv->fp;

	if (!csv->started) {
		csv->started = 1;
		skip_bom(csv);
	}
	csv->nfields = 0;
	csv->line = csv->next_line;
	csv->start[0] = 0;
	for (;;) {
		int c = next_byte(csv);
		int end_field = 0, end_record = 0;

		if (c == EOF) {
			if (ferror(fp)) {
				tly__qerr_set(err, errlen, "read error");
				rc = TLY_Q_EIO;
				goto out;
			}
			if (state == ST_QUOTED) {
				tly__qerr_set(err, errlen, "unbalanced quotes: end of file inside a quoted field");
				rc = TLY_Q_EINVAL;
				goto out;
			}
			if (!any)
				return 0;
			end_field = end_record = 1;
		} else if (c == 0) {
			tly__qerr_set(err, errlen, "NUL byte in input");
			rc = TLY_Q_EINVAL;
			goto out;
		} else if (state == ST_QUOTED) {
			if (c == '"') {
				state = ST_QUOTE_IN_QUOTED;
				continue;
			}
			if (c == '\n')
				csv->next_line++;
		} else {
			if (c == '\r') {
				int n = next_byte(csv);

				if (n != '\n') {
					tly__qerr_set(err, errlen, "carriage return not followed by line feed outside quotes");
					rc = TLY_Q_EINVAL;
					goto out;
				}
				c = '\n';
			}
			if (c == '\n') {
				csv->next_line++;
				if (!any) {            /* empty line: skip */
					csv->line = csv->next_line;
					continue;
				}
				end_field = end_record = 1;
			} else if (c == ',') {
				end_field = 1;
			} else if (c == '"') {
				if (state == ST_START) {
					state = ST_QUOTED;
					any = 1;
					continue;
				}
				if (state == ST_QUOTE_IN_QUOTED) {   /* "" inside quotes */
					state = ST_QUOTED;
				} else {
					tly__qerr_set(err, errlen, "quote inside an unquoted field (field %zu)",
						      csv->nfields + 1);
					rc = TLY_Q_EINVAL;
					goto out;
				}
			} else if (state == ST_QUOTE_IN_QUOTED) {
				tly__qerr_set(err, errlen, "text after the closing quote of field %zu",
					      csv->nfields + 1);
				rc = TLY_Q_EINVAL;
				goto out;
			} else {
				state = ST_UNQUOTED;
			}
		}
		any = 1;
		if (end_field) {
			size_t i = csv->nfields;

			csv->len[i] = flen;
			csv->buf[pos++] = '\0';
			if (!tly__utf8_valid(csv->buf + csv->start[i], flen)) {
				tly__qerr_set(err, errlen, "field %zu is not valid UTF-8", i + 1);
				rc = TLY_Q_EINVAL;
				goto out;
			}
			csv->nfields++;
			if (end_record)
				return 1;
			if (csv->nfields == csv->fields_max) {
				tly__qerr_set(err, errlen, "more than %zu fields", csv->fields_max);
				rc = TLY_Q_ELIMIT;
				goto out;
			}
			csv->start[csv->nfields] = pos;
			flen = 0;
			state = ST_START;
			continue;
		}
		if (flen == cap) {
			tly__qerr_set(err, errlen, "field %zu longer than %zu bytes", csv->nfields + 1, cap);
			rc = TLY_Q_ELIMIT;
			goto out;
		}
		csv->buf[pos++] = (char)c;
		flen++;
	}
out:
	/* Resynchronising after a bad record is not attempted: callers stop. */
	csv->nfields = 0;
	return rc;
}
