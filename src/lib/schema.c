/* schema.c — parsing project schemas, checking task data and answers.
 * Types are declared in tables (name, allowed keys, checker) rather than in
 * switch ladders, so adding a question type is adding a row. */
#include "schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_NAME_BYTES 200
#define MAX_LABEL_BYTES 256
#define MAX_ITEMS 10000 /* spans, boxes, messages */
/* MAX_ITEMS as text, for the messages that state it */
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- helpers ---------------------------------------------------------- */

static int valid_ident(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TLY_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			 (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

/* True when v is a JSON integer, or a real with an integral value. */
static int get_int(const json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d == floor(d) && fabs(d) < 9e15) {
			*out = (long long)d;
			return 1;
		}
	}
	return 0;
}

static int key_allowed(const char *key, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (strcmp(key, *allowed) == 0)
			return 1;
	return 0;
}

/* Refuses keys of obj outside `common` and `extra`. */
static enum tly_code check_keys(const json_t *obj, const char *const *common,
				const char *const *extra, const char *path, struct tly_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		(void)v;
		if (!key_allowed(key, common) && !(extra && key_allowed(key, extra))) {
			/* the path names the key itself: "questions[0].colour", "colour" */
			char at[192];
			snprintf(at, sizeof(at), "%s%s%.64s", *path ? path : "", *path ? "." : "", key);
			return tly_err_set(err, TLY_EINVALID, at, "%s: unknown key", at);
		}
	}
	return TLY_OK;
}

/* A list of 1..TLY_MAX_OPTIONS unique non-empty strings. */
static enum tly_code check_labels(const json_t *a, const char *path, struct tly_err *err)
{
	size_t n = json_array_size(a);

	if (!json_is_array(a) || n == 0 || n > TLY_MAX_OPTIONS)
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must be an array of 1 to %d strings", path, TLY_MAX_OPTIONS);
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_array_get(a, i);
		size_t len = json_string_length(v);
		if (!json_is_string(v) || len == 0 || len > MAX_LABEL_BYTES)
			return tly_err_set(err, TLY_EINVALID, path,
					   "%s[%zu]: must be a non-empty string of at most %d bytes",
					   path, i, MAX_LABEL_BYTES);
		for (size_t j = 0; j < i; j++)
			if (json_equal(v, json_array_get(a, j)))
				return tly_err_set(err, TLY_EINVALID, path,
						   "%s[%zu]: \"%.64s\" is repeated", path, i,
						   json_string_value(v));
	}
	return TLY_OK;
}

static int label_index(const json_t *labels, const json_t *v)
{
	if (!json_is_string(v))
		return -1;
	for (size_t i = 0; i < json_array_size(labels); i++)
		if (json_equal(json_array_get(labels, i), v))
			return (int)i;
	return -1;
}

/* ---- fields ------------------------------------------------------------ */

typedef enum tly_code (*data_check_fn)(const json_t *v, const char *path, struct tly_err *err);

static enum tly_code check_string(const json_t *v, const char *path, struct tly_err *err)
{
	if (!json_is_string(v))
		return tly_err_set(err, TLY_EINVALID, path, "%s: must be a string", path);
	return TLY_OK;
}

static enum tly_code check_image(const json_t *v, const char *path, struct tly_err *err)
{
	const char *s = json_string_value(v);

	if (!s || !(strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 ||
		    strncmp(s, "data:image/", 11) == 0))
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must be an http(s):// or data:image/ URL string", path);
	return TLY_OK;
}

static enum tly_code check_chat(const json_t *v, const char *path, struct tly_err *err)
{
	size_t n = json_array_size(v);

	if (!json_is_array(v) || n == 0 || n > MAX_ITEMS)
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must be an array of 1 to %d messages", path, MAX_ITEMS);
	for (size_t i = 0; i < n; i++) {
		const json_t *m = json_array_get(v, i);
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) ||
		    !json_is_string(json_object_get(m, "content")))
			return tly_err_set(err, TLY_EINVALID, path,
					   "%s[%zu]: must be an object with string \"role\" and \"content\"",
					   path, i);
	}
	return TLY_OK;
}

static enum tly_code check_responses(const json_t *v, const char *path, struct tly_err *err)
{
	size_t n = json_array_size(v);

	if (!json_is_array(v) || n == 0 || n > 64)
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must be an array of 1 to 64 strings", path);
	for (size_t i = 0; i < n; i++)
		if (!json_is_string(json_array_get(v, i)))
			return tly_err_set(err, TLY_EINVALID, path, "%s[%zu]: must be a string",
					   path, i);
	return TLY_OK;
}

static const struct {
	const char *name;
	data_check_fn check;
} field_types[TLY_F_NTYPES] = {
	[TLY_F_TEXT] = { "text", check_string },
	[TLY_F_MARKDOWN] = { "markdown", check_string },
	[TLY_F_IMAGE] = { "image", check_image },
	[TLY_F_CHAT] = { "chat", check_chat },
	[TLY_F_RESPONSES] = { "responses", check_responses },
};

static const char *const field_keys[] = { "name", "type", "required", "label", "description", NULL };

static enum tly_code parse_field(json_t *f, int idx, struct tly_schema *s, struct tly_err *err)
{
	char path[64];
	struct tly_field *fd = &s->fields[idx];
	const char *name, *type;
	json_t *req;
	enum tly_code rc;
	int t;

	snprintf(path, sizeof(path), "fields[%d]", idx);
	if (!json_is_object(f))
		return tly_err_set(err, TLY_EINVALID, path, "%s: must be an object", path);
	if ((rc = check_keys(f, field_keys, NULL, path, err)) != TLY_OK)
		return rc;
	name = json_string_value(json_object_get(f, "name"));
	if (!name || !valid_ident(name)) {
		snprintf(path, sizeof(path), "fields[%d].name", idx);
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must match [A-Za-z_][A-Za-z0-9_]{0,63}", path);
	}
	for (int j = 0; j < idx; j++)
		if (strcmp(s->fields[j].name, name) == 0) {
			snprintf(path, sizeof(path), "fields[%d].name", idx);
			return tly_err_set(err, TLY_EINVALID, path, "%s: \"%s\" is repeated", path, name);
		}
	type = json_string_value(json_object_get(f, "type"));
	for (t = 0; t < TLY_F_NTYPES; t++)
		if (type && strcmp(type, field_types[t].name) == 0)
			break;
	if (t == TLY_F_NTYPES) {
		snprintf(path, sizeof(path), "fields[%d].type", idx);
		return tly_err_set(err, TLY_EINVALID, path,
				   "%s: must be one of text, markdown, image, chat, responses", path);
	}
	req = json_object_get(f, "required");
	if (req && !json_is_boolean(req)) {
		snprintf(path, sizeof(path), "fields[%d].required", idx);
		return tly_err_set(err, TLY_EINVALID, path, "%s: must be true or false", path);
	}
	snprintf(fd->name, sizeof(fd->name), "%s", name);
	fd->type = (enum tly_field_type)t;
	fd->required = req ? json_is_true(req) : 1;
	json_object_set_new(f, "required", json_boolean(fd->required));
	return TLY_OK;
}

/* ---- questions --------------------------------------------------------- */

struct qctx {
	const struct tly_schema *s;
	const struct tly_question *q;
	const json_t *data;
	const char *path;
	struct tly_err *err;
};

typedef enum tly_code (*qparse_fn)(json_t *q, struct tly_question *qd, const struct tly_schema *s,
				   const char *path, struct tly_err *err);
typedef enum tly_code (*qcheck_fn)(const json_t *v, const struct qctx *c);

static enum tly_code parse_options(json_t *q, struct tly_question *qd, const char *key,
				   const char *path, struct tly_err *err)
{
	char p[96];

	snprintf(p, sizeof(p), "%s.%s", path, key);
	qd->options = json_object_get(q, key);
	return check_labels(qd->options, p, err);
}

/* Reads the optional integer q[key] into *out, bounded to [lo, hi]. */
static enum tly_code opt_int(json_t *q, const char *key, long long def, long long lo, long long hi,
			     long long *out, const char *path, struct tly_err *err)
{
	json_t *v = json_object_get(q, key);
	char p[96];

	*out = def;
	if (!v || json_is_null(v)) {
		json_object_set_new(q, key, json_integer(def));
		return TLY_OK;
	}
	if (!get_int(v, out) || *out < lo || *out > hi) {
		snprintf(p, sizeof(p), "%s.%s", path, key);
		return tly_err_set(err, TLY_EINVALID, p, "%s: must be an integer from %lld to %lld",
				   p, lo, hi);
	}
	json_object_set_new(q, key, json_integer(*out));
	return TLY_OK;
}

static enum tly_code parse_field_ref(json_t *q, struct tly_question *qd, const struct tly_schema *s,
				     unsigned types, const char *what, const char *path,
				     struct tly_err *err)
{
	const char *name = json_string_value(json_object_get(q, "field"));
	char p[96];

	snprintf(p, sizeof(p), "%s.field", path);
	for (int i = 0; name && i < s->nfields; i++)
		if (strcmp(s->fields[i].name, name) == 0) {
			if (!(types & (1u << s->fields[i].type)))
				return tly_err_set(err, TLY_EINVALID, p,
						   "%s: field \"%s\" is not %s", p, name, what);
			qd->field = i;
			return TLY_OK;
		}
	return tly_err_set(err, TLY_EINVALID, p, "%s: must name one of the project's %s fields",
			   p, what);
}

static enum tly_code qp_choice(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			       const char *path, struct tly_err *err)
{
	(void)s;
	return parse_options(q, qd, "options", path, err);
}

static enum tly_code qp_multi(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			      const char *path, struct tly_err *err)
{
	enum tly_code rc;
	long long n;
	char p[96];

	(void)s;
	if ((rc = parse_options(q, qd, "options", path, err)) != TLY_OK)
		return rc;
	n = (long long)json_array_size(qd->options);
	if ((rc = opt_int(q, "min_selected", qd->required ? 1 : 0, 0, n, &qd->min, path, err)) ||
	    (rc = opt_int(q, "max_selected", n, 1, n, &qd->max, path, err)))
		return rc;
	if (qd->min > qd->max) {
		snprintf(p, sizeof(p), "%s.min_selected", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: is above max_selected", p);
	}
	return TLY_OK;
}

static enum tly_code qp_spans(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			      const char *path, struct tly_err *err)
{
	enum tly_code rc = parse_field_ref(q, qd, s, (1u << TLY_F_TEXT) | (1u << TLY_F_MARKDOWN),
					   "a text or markdown", path, err);
	return rc ? rc : parse_options(q, qd, "labels", path, err);
}

static enum tly_code qp_boxes(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			      const char *path, struct tly_err *err)
{
	enum tly_code rc = parse_field_ref(q, qd, s, 1u << TLY_F_IMAGE, "an image", path, err);
	return rc ? rc : parse_options(q, qd, "labels", path, err);
}

static enum tly_code qp_ranking(json_t *q, struct tly_question *qd, const struct tly_schema *s,
				const char *path, struct tly_err *err)
{
	return parse_field_ref(q, qd, s, 1u << TLY_F_RESPONSES, "a responses", path, err);
}

static enum tly_code qp_compare(json_t *q, struct tly_question *qd, const struct tly_schema *s,
				const char *path, struct tly_err *err)
{
	json_t *tie = json_object_get(q, "allow_tie");
	char p[96];
	enum tly_code rc = parse_field_ref(q, qd, s, 1u << TLY_F_RESPONSES, "a responses", path, err);

	if (rc)
		return rc;
	if (tie && !json_is_boolean(tie)) {
		snprintf(p, sizeof(p), "%s.allow_tie", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: must be true or false", p);
	}
	qd->allow_tie = tie ? json_is_true(tie) : 0;
	json_object_set_new(q, "allow_tie", json_boolean(qd->allow_tie));
	return TLY_OK;
}

static enum tly_code qp_rating(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			       const char *path, struct tly_err *err)
{
	enum tly_code rc;
	char p[96];

	(void)s;
	if ((rc = opt_int(q, "min", 1, -1000000, 1000000, &qd->min, path, err)) ||
	    (rc = opt_int(q, "max", 5, -1000000, 1000000, &qd->max, path, err)))
		return rc;
	if (qd->min >= qd->max) {
		snprintf(p, sizeof(p), "%s.max", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: must be above min", p);
	}
	return TLY_OK;
}

static enum tly_code qp_text(json_t *q, struct tly_question *qd, const struct tly_schema *s,
			     const char *path, struct tly_err *err)
{
	enum tly_code rc;
	char p[96];

	(void)s;
	if ((rc = opt_int(q, "min_length", 0, 0, 1000000, &qd->min, path, err)) ||
	    (rc = opt_int(q, "max_length", 10000, 1, 1000000, &qd->max, path, err)))
		return rc;
	if (qd->min > qd->max) {
		snprintf(p, sizeof(p), "%s.min_length", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: is above max_length", p);
	}
	return TLY_OK;
}

/* ---- answer checks ------------------------------------------------------ */

static enum tly_code bad(const struct qctx *c, const char *fmt, const char *what)
{
	return tly_err_set(c->err, TLY_EINVALID, c->path, fmt, c->path, what);
}

static enum tly_code qc_choice(const json_t *v, const struct qctx *c)
{
	if (label_index(c->q->options, v) < 0)
		return bad(c, "%s: must be one of the question's %s", "options");
	return TLY_OK;
}

static enum tly_code qc_multi(const json_t *v, const struct qctx *c)
{
	size_t n = json_array_size(v);

	if (!json_is_array(v))
		return bad(c, "%s: must be an array of %s", "options");
	if ((long long)n < c->q->min || (long long)n > c->q->max)
		return tly_err_set(c->err, TLY_EINVALID, c->path,
				   "%s: must select from %lld to %lld options", c->path, c->q->min,
				   c->q->max);
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(v, i);
		if (label_index(c->q->options, o) < 0)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu]: must be one of the question's options", c->path, i);
		for (size_t j = 0; j < i; j++)
			if (json_equal(o, json_array_get(v, j)))
				return tly_err_set(c->err, TLY_EINVALID, c->path,
						   "%s[%zu]: is repeated", c->path, i);
	}
	return TLY_OK;
}

static const json_t *ref_value(const struct qctx *c)
{
	return json_object_get(c->data, c->s->fields[c->q->field].name);
}

static enum tly_code qc_spans(const json_t *v, const struct qctx *c)
{
	const json_t *text = ref_value(c);
	long long len = text ? (long long)tly_utf8_len(json_string_value(text),
						       json_string_length(text)) : 0;
	size_t n = json_array_size(v);

	if (!json_is_array(v) || n > MAX_ITEMS)
		return bad(c, "%s: must be an array of at most " STR(MAX_ITEMS) " %s", "{start, end, label} objects");
	for (size_t i = 0; i < n; i++) {
		const json_t *sp = json_array_get(v, i);
		long long st, en;
		if (!json_is_object(sp) || !get_int(json_object_get(sp, "start"), &st) ||
		    !get_int(json_object_get(sp, "end"), &en))
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu]: must be an object with integer start and end",
					   c->path, i);
		if (st < 0 || en <= st || en > len)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu]: needs 0 <= start < end <= %lld (length of %s in code points)",
					   c->path, i, len, c->s->fields[c->q->field].name);
		if (label_index(c->q->options, json_object_get(sp, "label")) < 0)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu].label: must be one of the question's labels",
					   c->path, i);
	}
	return TLY_OK;
}

static int get_num(const json_t *v, double *out)
{
	if (!json_is_number(v))
		return 0;
	*out = json_number_value(v);
	return isfinite(*out);
}

static enum tly_code qc_boxes(const json_t *v, const struct qctx *c)
{
	size_t n = json_array_size(v);
	const double eps = 1e-9;

	if (!json_is_array(v) || n > MAX_ITEMS)
		return bad(c, "%s: must be an array of at most " STR(MAX_ITEMS) " %s", "{x, y, w, h, label} objects");
	for (size_t i = 0; i < n; i++) {
		const json_t *b = json_array_get(v, i);
		double x, y, w, h;
		if (!json_is_object(b) || !get_num(json_object_get(b, "x"), &x) ||
		    !get_num(json_object_get(b, "y"), &y) || !get_num(json_object_get(b, "w"), &w) ||
		    !get_num(json_object_get(b, "h"), &h))
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu]: must be an object with numbers x, y, w, h",
					   c->path, i);
		if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 1 + eps || y + h > 1 + eps)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu]: needs 0 <= x, y; w, h > 0; x+w <= 1; y+h <= 1 (relative coordinates)",
					   c->path, i);
		if (label_index(c->q->options, json_object_get(b, "label")) < 0)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%zu].label: must be one of the question's labels",
					   c->path, i);
	}
	return TLY_OK;
}

static long long ref_count(const struct qctx *c)
{
	return (long long)json_array_size(ref_value(c));
}

static enum tly_code qc_ranking(const json_t *v, const struct qctx *c)
{
	long long n = ref_count(c);
	unsigned char seen[64] = { 0 };

	if (!json_is_array(v) || (long long)json_array_size(v) != n)
		return tly_err_set(c->err, TLY_EINVALID, c->path,
				   "%s: must be an array ordering all %lld responses (indexes, best first)",
				   c->path, n);
	for (long long i = 0; i < n; i++) {
		long long k;
		if (!get_int(json_array_get(v, (size_t)i), &k) || k < 0 || k >= n || seen[k]++)
			return tly_err_set(c->err, TLY_EINVALID, c->path,
					   "%s[%lld]: must be a response index from 0 to %lld, each once",
					   c->path, i, n - 1);
	}
	return TLY_OK;
}

static enum tly_code qc_compare(const json_t *v, const struct qctx *c)
{
	long long n = ref_count(c), k;

	if (c->q->allow_tie && json_is_string(v) && strcmp(json_string_value(v), "tie") == 0)
		return TLY_OK;
	if (!get_int(v, &k) || k < 0 || k >= n)
		return tly_err_set(c->err, TLY_EINVALID, c->path,
				   "%s: must be the index of the preferred response (0 to %lld)%s",
				   c->path, n - 1, c->q->allow_tie ? " or \"tie\"" : "");
	return TLY_OK;
}

static enum tly_code qc_rating(const json_t *v, const struct qctx *c)
{
	long long k;

	if (!get_int(v, &k) || k < c->q->min || k > c->q->max)
		return tly_err_set(c->err, TLY_EINVALID, c->path,
				   "%s: must be an integer from %lld to %lld", c->path, c->q->min,
				   c->q->max);
	return TLY_OK;
}

static enum tly_code qc_text(const json_t *v, const struct qctx *c)
{
	long long len;

	if (!json_is_string(v))
		return bad(c, "%s: must be a %s", "string");
	len = (long long)tly_utf8_len(json_string_value(v), json_string_length(v));
	if (len < c->q->min || len > c->q->max)
		return tly_err_set(c->err, TLY_EINVALID, c->path,
				   "%s: must be %lld to %lld characters long", c->path, c->q->min,
				   c->q->max);
	return TLY_OK;
}

static const char *const q_common[] = { "name", "type", "required", "label", "description", NULL };
static const char *const q_choice_keys[] = { "options", NULL };
static const char *const q_multi_keys[] = { "options", "min_selected", "max_selected", NULL };
static const char *const q_labels_keys[] = { "field", "labels", NULL };
static const char *const q_field_keys[] = { "field", NULL };
static const char *const q_compare_keys[] = { "field", "allow_tie", NULL };
static const char *const q_rating_keys[] = { "min", "max", NULL };
static const char *const q_text_keys[] = { "min_length", "max_length", NULL };

static const struct {
	const char *name;
	const char *const *keys;
	qparse_fn parse;
	qcheck_fn check;
} question_types[TLY_Q_NTYPES] = {
	[TLY_Q_CHOICE] = { "choice", q_choice_keys, qp_choice, qc_choice },
	[TLY_Q_MULTI] = { "multi_choice", q_multi_keys, qp_multi, qc_multi },
	[TLY_Q_SPANS] = { "spans", q_labels_keys, qp_spans, qc_spans },
	[TLY_Q_BOXES] = { "boxes", q_labels_keys, qp_boxes, qc_boxes },
	[TLY_Q_RANKING] = { "ranking", q_field_keys, qp_ranking, qc_ranking },
	[TLY_Q_COMPARE] = { "compare", q_compare_keys, qp_compare, qc_compare },
	[TLY_Q_RATING] = { "rating", q_rating_keys, qp_rating, qc_rating },
	[TLY_Q_TEXT] = { "text", q_text_keys, qp_text, qc_text },
};

const char *tly_question_type_name(enum tly_question_type t)
{
	return t < TLY_Q_NTYPES ? question_types[t].name : "?";
}

static enum tly_code parse_question(json_t *q, int idx, struct tly_schema *s, struct tly_err *err)
{
	char path[64], p[96];
	struct tly_question *qd = &s->questions[idx];
	const char *name, *type;
	json_t *req;
	enum tly_code rc;
	int t;

	snprintf(path, sizeof(path), "questions[%d]", idx);
	if (!json_is_object(q))
		return tly_err_set(err, TLY_EINVALID, path, "%s: must be an object", path);
	name = json_string_value(json_object_get(q, "name"));
	if (!name || !valid_ident(name)) {
		snprintf(p, sizeof(p), "%s.name", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: must match [A-Za-z_][A-Za-z0-9_]{0,63}", p);
	}
	for (int j = 0; j < idx; j++)
		if (strcmp(s->questions[j].name, name) == 0) {
			snprintf(p, sizeof(p), "%s.name", path);
			return tly_err_set(err, TLY_EINVALID, p, "%s: \"%s\" is repeated", p, name);
		}
	type = json_string_value(json_object_get(q, "type"));
	for (t = 0; t < TLY_Q_NTYPES; t++)
		if (type && strcmp(type, question_types[t].name) == 0)
			break;
	if (t == TLY_Q_NTYPES) {
		snprintf(p, sizeof(p), "%s.type", path);
		return tly_err_set(err, TLY_EINVALID, p,
				   "%s: must be one of choice, multi_choice, spans, boxes, ranking, compare, rating, text",
				   p);
	}
	if ((rc = check_keys(q, q_common, question_types[t].keys, path, err)) != TLY_OK)
		return rc;
	req = json_object_get(q, "required");
	if (req && !json_is_boolean(req)) {
		snprintf(p, sizeof(p), "%s.required", path);
		return tly_err_set(err, TLY_EINVALID, p, "%s: must be true or false", p);
	}
	snprintf(qd->name, sizeof(qd->name), "%s", name);
	qd->type = (enum tly_question_type)t;
	qd->required = req ? json_is_true(req) : 1;
	qd->field = -1;
	qd->options = NULL;
	json_object_set_new(q, "required", json_boolean(qd->required));
	return question_types[t].parse(q, qd, s, path, err);
}

/* ---- schema ------------------------------------------------------------ */

static const char *const top_keys[] = { "name", "instructions", "fields", "questions",
					"min_responses", "max_responses", "lease_seconds", "quality",
					NULL };
static const char *const quality_keys[] = { "confidence_target", "gold_rate", "qualification_tasks",
					    "gold_min_accuracy", "refit_every", NULL };

/* Reads the optional number q[key] into *out within [lo, hi]. */
static enum tly_code opt_real(json_t *q, const char *key, double def, double lo, double hi,
			      double *out, struct tly_err *err)
{
	json_t *v = json_object_get(q, key);
	char p[96];

	*out = def;
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
			snprintf(p, sizeof(p), "quality.%s", key);
			return tly_err_set(err, TLY_EINVALID, p, "%s: must be a number from %g to %g",
					   p, lo, hi);
		}
		*out = json_number_value(v);
	}
	json_object_set_new(q, key, json_real(*out));
	return TLY_OK;
}

static enum tly_code parse_quality(json_t *doc, struct tly_quality_cfg *qc, struct tly_err *err)
{
	json_t *q = json_object_get(doc, "quality");
	long long n;
	enum tly_code rc;

	if (!q || json_is_null(q)) {
		q = json_object();
		json_object_set_new(doc, "quality", q);
	}
	if (!json_is_object(q))
		return tly_err_set(err, TLY_EINVALID, "quality", "quality: must be an object");
	if ((rc = check_keys(q, quality_keys, NULL, "quality", err)) != TLY_OK)
		return rc;
	if ((rc = opt_real(q, "confidence_target", 0, 0, 0.9999, &qc->confidence_target, err)) ||
	    (rc = opt_real(q, "gold_rate", 0, 0, 0.9, &qc->gold_rate, err)) ||
	    (rc = opt_real(q, "gold_min_accuracy", 0, 0, 1, &qc->gold_min_accuracy, err)))
		return rc;
	if ((rc = opt_int(q, "qualification_tasks", 0, 0, 1000, &n, "quality", err)) != TLY_OK)
		return rc;
	qc->qualification = (int)n;
	if ((rc = opt_int(q, "refit_every", 500, 10, 10000000, &n, "quality", err)) != TLY_OK)
		return rc;
	qc->refit_every = (int)n;
	return TLY_OK;
}

enum tly_code tly_schema_parse(const json_t *in, struct tly_schema *out, struct tly_err *err)
{
	json_t *doc = NULL, *fields, *questions, *v;
	const char *name;
	long long min, max, lease;
	enum tly_code rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(in)) {
		rc = tly_err_set(err, TLY_EBADREQ, "", "the schema must be a JSON object");
		goto fail;
	}
	doc = json_deep_copy(in);
	if ((rc = check_keys(doc, top_keys, NULL, "", err)) != TLY_OK)
		goto fail;
	name = json_string_value(json_object_get(doc, "name"));
	if (!name || !*name || json_string_length(json_object_get(doc, "name")) > MAX_NAME_BYTES) {
		rc = tly_err_set(err, TLY_EINVALID, "name",
				 "name: must be a non-empty string of at most %d bytes", MAX_NAME_BYTES);
		goto fail;
	}
	v = json_object_get(doc, "instructions");
	if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 65536)) {
		rc = tly_err_set(err, TLY_EINVALID, "instructions",
				 "instructions: must be a string of at most 65536 bytes");
		goto fail;
	}
	if (!v || json_is_null(v))
		json_object_set_new(doc, "instructions", json_string(""));

	fields = json_object_get(doc, "fields");
	if (!json_is_array(fields) || json_array_size(fields) == 0 ||
	    json_array_size(fields) > TLY_MAX_FIELDS) {
		rc = tly_err_set(err, TLY_EINVALID, "fields",
				 "fields: must be an array of 1 to %d fields", TLY_MAX_FIELDS);
		goto fail;
	}
	out->nfields = (int)json_array_size(fields);
	for (int i = 0; i < out->nfields; i++)
		if ((rc = parse_field(json_array_get(fields, (size_t)i), i, out, err)) != TLY_OK)
			goto fail;

	questions = json_object_get(doc, "questions");
	if (!json_is_array(questions) || json_array_size(questions) == 0 ||
	    json_array_size(questions) > TLY_MAX_QUESTIONS) {
		rc = tly_err_set(err, TLY_EINVALID, "questions",
				 "questions: must be an array of 1 to %d questions", TLY_MAX_QUESTIONS);
		goto fail;
	}
	out->nquestions = (int)json_array_size(questions);
	for (int i = 0; i < out->nquestions; i++)
		if ((rc = parse_question(json_array_get(questions, (size_t)i), i, out, err)) != TLY_OK)
			goto fail;

	if ((rc = opt_int(doc, "min_responses", 1, 1, TLY_MAX_RESPONSES, &min, "", err)) ||
	    (rc = opt_int(doc, "max_responses", min, 1, TLY_MAX_RESPONSES, &max, "", err)) ||
	    (rc = opt_int(doc, "lease_seconds", 600, 1, 86400, &lease, "", err))) {
		/* opt_int wrote ".key": drop the leading dot of a top-level path */
		memmove(err->field, err->field + 1, strlen(err->field));
		memmove(err->message, err->message + 1, strlen(err->message));
		goto fail;
	}
	if (max < min) {
		rc = tly_err_set(err, TLY_EINVALID, "max_responses",
				 "max_responses: must be at least min_responses (%lld)", min);
		goto fail;
	}
	if ((rc = parse_quality(doc, &out->quality, err)) != TLY_OK)
		goto fail;
	out->min_responses = (int)min;
	out->max_responses = (int)max;
	out->lease_seconds = (int)lease;
	out->doc = doc;
	return TLY_OK;
fail:
	json_decref(doc);
	memset(out, 0, sizeof(*out));
	return rc;
}

void tly_schema_clear(struct tly_schema *s)
{
	json_decref(s->doc);
	memset(s, 0, sizeof(*s));
}

enum tly_code tly_schema_check_data(const struct tly_schema *s, const json_t *data,
				    struct tly_err *err)
{
	char path[96];

	if (!json_is_object(data))
		return tly_err_set(err, TLY_EINVALID, "data", "data: must be an object");
	for (int i = 0; i < s->nfields; i++) {
		const struct tly_field *f = &s->fields[i];
		const json_t *v = json_object_get(data, f->name);
		snprintf(path, sizeof(path), "data.%s", f->name);
		if (!v || json_is_null(v)) {
			if (f->required)
				return tly_err_set(err, TLY_EINVALID, path, "%s: is required", path);
			continue;
		}
		if (field_types[f->type].check(v, path, err) != TLY_OK)
			return err->code;
	}
	return TLY_OK;
}

enum tly_code tly_schema_check_answers(const struct tly_schema *s, const json_t *data,
				       const json_t *answers, struct tly_err *err)
{
	char path[96];
	const char *key;
	json_t *v;

	if (!json_is_object(answers))
		return tly_err_set(err, TLY_EINVALID, "answers", "answers: must be an object");
	json_object_foreach((json_t *)answers, key, v) {
		int known = 0;
		(void)v;
		for (int i = 0; i < s->nquestions && !known; i++)
			known = strcmp(s->questions[i].name, key) == 0;
		if (!known) {
			snprintf(path, sizeof(path), "answers.%.64s", key);
			return tly_err_set(err, TLY_EINVALID, path, "%s: the project has no such question",
					   path);
		}
	}
	for (int i = 0; i < s->nquestions; i++) {
		const struct tly_question *q = &s->questions[i];
		struct qctx c = { s, q, data, path, err };
		v = json_object_get(answers, q->name);
		snprintf(path, sizeof(path), "answers.%s", q->name);
		if (!v || json_is_null(v)) {
			if (q->required)
				return tly_err_set(err, TLY_EINVALID, path, "%s: is required", path);
			continue;
		}
		if (question_types[q->type].check(v, &c) != TLY_OK)
			return err->code;
	}
	return TLY_OK;
}

int tly_question_nlabels(const struct tly_schema *s, const struct tly_question *q,
			 const json_t *data)
{
	switch (q->type) {
	case TLY_Q_CHOICE:
		return (int)json_array_size(q->options);
	case TLY_Q_RATING:
		return (int)(q->max - q->min + 1);
	case TLY_Q_COMPARE:
		return (int)json_array_size(json_object_get(data, s->fields[q->field].name)) +
		       (q->allow_tie ? 1 : 0);
	default:
		return 0;
	}
}

int tly_question_label_index(const struct tly_question *q, const json_t *answer)
{
	long long k;

	switch (q->type) {
	case TLY_Q_CHOICE:
		return label_index(q->options, answer);
	case TLY_Q_RATING:
		return get_int(answer, &k) ? (int)(k - q->min) : -1;
	case TLY_Q_COMPARE:
		if (json_is_string(answer))
			return -2; /* "tie": the caller maps it to the last label */
		return get_int(answer, &k) ? (int)k : -1;
	default:
		return -1;
	}
}

json_t *tly_question_label(const struct tly_question *q, int i)
{
	switch (q->type) {
	case TLY_Q_CHOICE:
		return json_incref(json_array_get(q->options, (size_t)i));
	case TLY_Q_RATING:
		return json_integer(q->min + i);
	case TLY_Q_COMPARE:
		return json_integer(i);
	default:
		return json_null();
	}
}

enum tly_code tly_schema_check_gold(const struct tly_schema *s, const json_t *data,
				    const json_t *gold, struct tly_err *err)
{
	char path[96];
	const char *key;
	json_t *v;

	if (!json_is_object(gold) || json_object_size(gold) == 0)
		return tly_err_set(err, TLY_EINVALID, "gold",
				   "gold: must be an object of known answers, keyed by question");
	json_object_foreach((json_t *)gold, key, v) {
		const struct tly_question *q = NULL;
		for (int i = 0; i < s->nquestions && !q; i++)
			if (strcmp(s->questions[i].name, key) == 0)
				q = &s->questions[i];
		snprintf(path, sizeof(path), "gold.%.64s", key);
		if (!q)
			return tly_err_set(err, TLY_EINVALID, path, "%s: the project has no such question",
					   path);
		struct qctx c = { s, q, data, path, err };
		if (question_types[q->type].check(v, &c) != TLY_OK)
			return err->code;
	}
	return TLY_OK;
}
