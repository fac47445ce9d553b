/*
 * csvread.h - a streaming RFC 4180 CSV reader with line numbers and caps.
 *
 * Reads one record at a time from a stdio stream the caller opened (and later
 * closes). Accepted: fields separated by ',', records ended by LF or CRLF,
 * fields optionally enclosed in double quotes with "" standing for one quote;
 * quoted fields may hold commas and line breaks. A UTF-8 byte-order mark at
 * the very start is skipped. Wholly empty lines are skipped.
 *
 * Rejected, with TLY_Q_EINVAL or TLY_Q_ELIMIT and a reason:
 *   - a quote inside an unquoted field, text after a closing quote,
 *   - end of file inside a quoted field (unbalanced quotes),
 *   - a bare CR not followed by LF outside quotes, a NUL byte,
 *   - a field that is not valid UTF-8 (overlong forms, surrogates, > U+10FFFF),
 *   - a field longer than field_max bytes, a record with more than fields_max fields.
 *
 * Memory: one buffer of about fields_max * (field_max + 1) bytes, allocated by
 * tly_csv_init and freed by tly_csv_release; nothing grows while reading.
 * The field pointers returned stay valid until the next tly_csv_read or
 * tly_csv_release. Fields are NUL-terminated (and never contain NUL).
 */
#ifndef TLY_QUALITY_CSVREAD_H
#define TLY_QUALITY_CSVREAD_H

#include <stdio.h>
#include <stddef.h>
#include "quality/qerror.h"

#define TLY_CSV_FIELD_MAX_DEFAULT 4096u
#define TLY_CSV_FIELDS_MAX_DEFAULT 64u

struct tly_csv {
	FILE *fp;            /* borrowed */
	size_t field_max;
	size_t fields_max;
	char *buf;           /* owned: fields, each NUL-terminated */
	size_t *start;       /* owned: offset of field i in buf */
	size_t *len;         /* owned: length of field i */
	size_t nfields;
	unsigned long line;       /* physical line where the current record starts (1-based) */
	unsigned long next_line;  /* physical line of the next byte to read */
	int started;              /* BOM check done */
	unsigned char pend[3];    /* bytes read while looking for a BOM */
	int npend, ipend;
};

/* Prepares a reader over fp. field_max/fields_max of 0 take the defaults.
 * Returns TLY_Q_OK or TLY_Q_ENOMEM. */
int tly_csv_init(struct tly_csv *csv, FILE *fp, size_t field_max, size_t fields_max);

/* Reads the next record. Returns 1 when a record was read, 0 at end of input,
 * or a negative enum tly_qerr with a reason in err (without file name or line
 * number: tly_csv_line gives the line where the record started). */
int tly_csv_read(struct tly_csv *csv, char *err, size_t errlen);

/* Field i (0-based, i < csv->nfields) of the last record, and its length. */
const char *tly_csv_field(const struct tly_csv *csv, size_t i, size_t *len);

/* Line number where the last record (or the failing one) started. */
unsigned long tly_csv_line(const struct tly_csv *csv);

/* Frees the buffers; safe on a zeroed or already released reader. */
void tly_csv_release(struct tly_csv *csv);

/* Internal: 1 when s[0..n) is well-formed UTF-8 without NUL. */
int tly__utf8_valid(const char *s, size_t n);

#endif
