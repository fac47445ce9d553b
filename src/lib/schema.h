/* schema.h — project schemas: what annotators see (fields) and what they are
 * asked (questions), and the checks of task data and answers against them.
 *
 * A schema is parsed from untrusted JSON; every fault is reported with the
 * path of the offending value ("questions[2].options"). The parsed schema
 * keeps a normalized JSON copy (defaults filled in) which is what the store
 * keeps and what the API shows. */
#ifndef TLY_SCHEMA_H
#define TLY_SCHEMA_H

#include <jansson.h>

#include "err.h"

#define TLY_NAME_MAX 64
#define TLY_MAX_FIELDS 64
#define TLY_MAX_QUESTIONS 64
#define TLY_MAX_OPTIONS 1000
#define TLY_MAX_RESPONSES 100

enum tly_field_type { TLY_F_TEXT, TLY_F_MARKDOWN, TLY_F_IMAGE, TLY_F_CHAT,
		      TLY_F_RESPONSES, TLY_F_NTYPES };
enum tly_question_type { TLY_Q_CHOICE, TLY_Q_MULTI, TLY_Q_SPANS, TLY_Q_BOXES,
			 TLY_Q_RANKING, TLY_Q_COMPARE, TLY_Q_RATING, TLY_Q_TEXT,
			 TLY_Q_NTYPES };

struct tly_field {
	char name[TLY_NAME_MAX + 1];
	enum tly_field_type type;
	int required;
};

struct tly_question {
	char name[TLY_NAME_MAX + 1];
	enum tly_question_type type;
	int required;
	json_t *options;     /* choice/multi: options; spans/boxes: labels (borrowed from doc) */
	int field;           /* index into fields for spans/boxes/ranking/compare, else -1 */
	long long min, max;  /* rating bounds; text length bounds; multi selection bounds */
	int allow_tie;
};

/* Quality settings of a project ("quality" in the schema). */
struct tly_quality_cfg {
	double confidence_target;  /* complete after min_responses once consensus reaches it; 0: off */
	double gold_rate;          /* share of claims served from gold tasks, [0, 1) */
	int qualification;         /* a new annotator's first N tasks are gold */
	double gold_min_accuracy;  /* pause an annotator whose Wilson upper bound is below; 0: off */
	int refit_every;           /* refit the project's model after this many new answers */
};

struct tly_schema {
	json_t *doc;         /* normalized schema, owned */
	struct tly_quality_cfg quality;
	int nfields, nquestions;
	struct tly_field fields[TLY_MAX_FIELDS];
	struct tly_question questions[TLY_MAX_QUESTIONS];
	int min_responses, max_responses, lease_seconds;
};

/* Parses and checks `in` (not consumed). On success *out owns a new doc;
 * release it with tly_schema_clear. */
enum tly_code tly_schema_parse(const json_t *in, struct tly_schema *out, struct tly_err *err);
void tly_schema_clear(struct tly_schema *s);

/* Checks a task's data object; fault paths start at "data". */
enum tly_code tly_schema_check_data(const struct tly_schema *s, const json_t *data,
				    struct tly_err *err);
/* Checks answers for a task with the given data; fault paths start at "answers". */
enum tly_code tly_schema_check_answers(const struct tly_schema *s, const json_t *data,
				       const json_t *answers, struct tly_err *err);

const char *tly_question_type_name(enum tly_question_type t);

/* Checks the known answers of a gold task (a subset of the questions). */
enum tly_code tly_schema_check_gold(const struct tly_schema *s, const json_t *data,
				    const json_t *gold, struct tly_err *err);

/* Questions whose answer is one label out of a known set (choice, rating,
 * compare) get a consensus label with a confidence. Returns their number of
 * labels for a task with this data (a compare's tie is the last label), 0
 * for other questions. */
int tly_question_nlabels(const struct tly_schema *s, const struct tly_question *q,
			 const json_t *data);
/* Label index of an answer value, -2 for a compare's "tie", -1 if none. */
int tly_question_label_index(const struct tly_question *q, const json_t *answer);
/* JSON value of label i (new reference). */
json_t *tly_question_label(const struct tly_question *q, int i);

#endif
