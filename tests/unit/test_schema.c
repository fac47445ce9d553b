/* test_schema.c — project schemas (schema.h): parsing and normalization,
 * the exact path of every fault, task data checks and answer checks.
 *
 * JSON in the tables is written with single quotes (turned into double quotes
 * before parsing) to keep the rows readable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "testkit.h"

/* ---- helpers ------------------------------------------------------------ */

static long long jint(const json_t *o, const char *path)
{
	const json_t *v = json_object_get(o, path);
	if (!json_is_integer(v))
		fail_msg("%s: not an integer", path);
	return json_integer_value(v);
}

/* n copies of a JSON fragment joined by commas, with %d replaced by the index */
static char *repeat(const char *fmt, int n)
{
	size_t cap = strlen(fmt) * (size_t)n + 64 * (size_t)n + 16, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	s[0] = '\0';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s", i ? "," : ""),
		len += (size_t)snprintf(s + len, cap - len, fmt, i);
	return s;
}

/* Parses `schema` and checks code and field; on failure the message must
 * begin with the field path (when there is one). */
static void expect_parse(const json_t *schema, enum tly_code code, const char *field,
			 const char *what)
{
	struct tly_schema s;
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	rc = tly_schema_parse(schema, &s, &err);
	if (rc != code)
		fail_msg("%s: code %d (%s: %s), expected %d", what, rc, err.field, err.message, code);
	if (rc == TLY_OK) {
		assert_non_null(s.doc);
		tly_schema_clear(&s);
		return;
	}
	assert_null(s.doc);
	assert_int_equal(err.code, code);
	if (strcmp(err.field, field) != 0)
		fail_msg("%s: field \"%s\", expected \"%s\" (%s)", what, err.field, field, err.message);
	/* the message names the place: the path, possibly narrowed ("options[1]") */
	if (*field && (strncmp(err.message, field, strlen(field)) != 0 ||
		       !strchr(":[.", err.message[strlen(field)])))
		fail_msg("%s: message \"%s\" does not start with \"%s\"", what, err.message, field);
	assert_true(err.message[0] != '\0');
}

/* ---- the example schema and defaults -------------------------------------- */

static const char example_schema[] =
	"{'name':'Sentiment',"
	" 'instructions':'Pick the feeling of the text.',"
	" 'fields':[{'name':'text','type':'text'}],"
	" 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative','neutral']}],"
	" 'min_responses':3,'max_responses':3,'lease_seconds':600}";

static void test_example_schema(void **state)
{
	json_t *in = J(example_schema), *copy = json_deep_copy(in);
	struct tly_schema s;
	struct tly_err err;
	const json_t *f, *q;

	(void)state;
	tly_err_clear(&err);
	assert_int_equal(tly_schema_parse(in, &s, &err), TLY_OK);
	assert_true(json_equal(in, copy)); /* input not consumed nor changed */
	assert_int_equal(s.nfields, 1);
	assert_int_equal(s.nquestions, 1);
	assert_string_equal(s.fields[0].name, "text");
	assert_int_equal(s.fields[0].type, TLY_F_TEXT);
	assert_int_equal(s.fields[0].required, 1);
	assert_string_equal(s.questions[0].name, "sentiment");
	assert_int_equal(s.questions[0].type, TLY_Q_CHOICE);
	assert_int_equal(s.questions[0].required, 1);
	assert_int_equal(s.questions[0].field, -1);
	assert_int_equal(json_array_size(s.questions[0].options), 3);
	assert_int_equal(s.min_responses, 3);
	assert_int_equal(s.max_responses, 3);
	assert_int_equal(s.lease_seconds, 600);

	assert_string_equal(json_string_value(json_object_get(s.doc, "name")), "Sentiment");
	assert_string_equal(json_string_value(json_object_get(s.doc, "instructions")),
			    "Pick the feeling of the text.");
	f = json_array_get(json_object_get(s.doc, "fields"), 0);
	assert_true(json_is_true(json_object_get(f, "required")));
	q = json_array_get(json_object_get(s.doc, "questions"), 0);
	assert_true(json_is_true(json_object_get(q, "required")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(q, "options"), 2)),
			    "neutral");
	assert_int_equal(jint(s.doc, "min_responses"), 3);
	assert_int_equal(jint(s.doc, "max_responses"), 3);
	assert_int_equal(jint(s.doc, "lease_seconds"), 600);
	assert_string_equal(tly_question_type_name(s.questions[0].type), "choice");
	tly_schema_clear(&s);
	assert_null(s.doc);
	json_decref(in);
	json_decref(copy);
}

static void test_defaults_filled(void **state)
{
	json_t *in = J("{'name':'D',"
		       " 'fields':[{'name':'text','type':'text'},{'name':'img','type':'image','required':false},"
		       "   {'name':'resp','type':'responses'}],"
		       " 'questions':["
		       "  {'name':'r','type':'rating'},"
		       "  {'name':'t','type':'text'},"
		       "  {'name':'m','type':'multi_choice','options':['a','b','c']},"
		       "  {'name':'mo','type':'multi_choice','options':['a','b'],'required':false},"
		       "  {'name':'c','type':'compare','field':'resp'},"
		       "  {'name':'k','type':'ranking','field':'resp'},"
		       "  {'name':'s','type':'spans','field':'text','labels':['X']},"
		       "  {'name':'b','type':'boxes','field':'img','labels':['Y'],'required':false}]}");
	struct tly_schema s;
	struct tly_err err;
	const json_t *qs, *fs;

	(void)state;
	tly_err_clear(&err);
	assert_int_equal(tly_schema_parse(in, &s, &err), TLY_OK);
	assert_int_equal(s.min_responses, 1);
	assert_int_equal(s.max_responses, 1);
	assert_int_equal(s.lease_seconds, 600);
	assert_int_equal(jint(s.doc, "min_responses"), 1);
	assert_int_equal(jint(s.doc, "max_responses"), 1);
	assert_int_equal(jint(s.doc, "lease_seconds"), 600);
	assert_string_equal(json_string_value(json_object_get(s.doc, "instructions")), "");

	fs = json_object_get(s.doc, "fields");
	assert_true(json_is_true(json_object_get(json_array_get(fs, 0), "required")));
	assert_true(json_is_false(json_object_get(json_array_get(fs, 1), "required")));
	assert_int_equal(s.fields[1].required, 0);
	assert_int_equal(s.fields[1].type, TLY_F_IMAGE);
	assert_int_equal(s.fields[2].type, TLY_F_RESPONSES);

	qs = json_object_get(s.doc, "questions");
	/* rating 1..5 */
	assert_int_equal(s.questions[0].min, 1);
	assert_int_equal(s.questions[0].max, 5);
	assert_int_equal(jint(json_array_get(qs, 0), "min"), 1);
	assert_int_equal(jint(json_array_get(qs, 0), "max"), 5);
	/* text 0..10000 */
	assert_int_equal(s.questions[1].min, 0);
	assert_int_equal(s.questions[1].max, 10000);
	assert_int_equal(jint(json_array_get(qs, 1), "min_length"), 0);
	assert_int_equal(jint(json_array_get(qs, 1), "max_length"), 10000);
	/* multi: required -> 1..n, optional -> 0..n */
	assert_int_equal(s.questions[2].min, 1);
	assert_int_equal(s.questions[2].max, 3);
	assert_int_equal(jint(json_array_get(qs, 2), "min_selected"), 1);
	assert_int_equal(jint(json_array_get(qs, 2), "max_selected"), 3);
	assert_int_equal(s.questions[3].min, 0);
	assert_int_equal(s.questions[3].max, 2);
	assert_int_equal(jint(json_array_get(qs, 3), "min_selected"), 0);
	assert_true(json_is_false(json_object_get(json_array_get(qs, 3), "required")));
	/* compare: no tie by default; field references resolved */
	assert_int_equal(s.questions[4].allow_tie, 0);
	assert_true(json_is_false(json_object_get(json_array_get(qs, 4), "allow_tie")));
	assert_int_equal(s.questions[4].field, 2);
	assert_int_equal(s.questions[5].field, 2);
	assert_int_equal(s.questions[6].field, 0);
	assert_int_equal(s.questions[6].type, TLY_Q_SPANS);
	assert_int_equal(s.questions[7].field, 1);
	assert_int_equal(s.questions[7].required, 0);
	for (int i = 0; i < 7; i++)
		if (i != 3)
			assert_true(json_is_true(json_object_get(json_array_get(qs, (size_t)i), "required")));

	/* the normalized doc parses again to the same doc */
	{
		struct tly_schema s2;
		assert_int_equal(tly_schema_parse(s.doc, &s2, &err), TLY_OK);
		assert_true(json_equal(s.doc, s2.doc));
		tly_schema_clear(&s2);
	}
	tly_schema_clear(&s);
	json_decref(in);
}

/* max_responses defaults to min; integral reals are normalized to integers */
static void test_numbers_normalized(void **state)
{
	json_t *in = J("{'name':'N','fields':[{'name':'t','type':'text'}],"
		       " 'questions':[{'name':'r','type':'rating','min':0.0,'max':10.0}],"
		       " 'min_responses':2.0,'lease_seconds':1}");
	struct tly_schema s;
	struct tly_err err;

	(void)state;
	assert_int_equal(tly_schema_parse(in, &s, &err), TLY_OK);
	assert_int_equal(s.min_responses, 2);
	assert_int_equal(s.max_responses, 2);
	assert_int_equal(s.lease_seconds, 1);
	assert_true(json_is_integer(json_object_get(s.doc, "min_responses")));
	assert_int_equal(jint(s.doc, "max_responses"), 2);
	assert_int_equal(s.questions[0].min, 0);
	assert_int_equal(s.questions[0].max, 10);
	assert_true(json_is_integer(json_object_get(json_array_get(json_object_get(s.doc, "questions"), 0), "max")));
	tly_schema_clear(&s);
	json_decref(in);
}

/* ---- bad schemas: exact code and field path --------------------------------- */

#define NM "'name':'P'"
#define FT "'fields':[{'name':'text','type':'text'}]"
#define FALL "'fields':[{'name':'text','type':'text'},{'name':'img','type':'image'}," \
	     "{'name':'resp','type':'responses'},{'name':'md','type':'markdown'},{'name':'chat','type':'chat'}]"
#define QC "'questions':[{'name':'q','type':'choice','options':['a','b']}]"
#define S_(body) "{" NM "," FT "," body "}"          /* name + text field + body */
#define SA(body) "{" NM "," FALL "," body "}"        /* name + all field types + body */
#define SQ(q) S_("'questions':[" q "]")
#define SAQ(q) SA("'questions':[" q "]")

struct bad_schema {
	const char *json;
	enum tly_code code;
	const char *field;
};

static const struct bad_schema bad_schemas[] = {
	/* not an object */
	{ "[]", TLY_EBADREQ, "" },
	{ "'schema'", TLY_EBADREQ, "" },
	{ "42", TLY_EBADREQ, "" },
	{ "null", TLY_EBADREQ, "" },
	/* top level */
	{ "{" NM "," FT "," QC ",'colour':'red'}", TLY_EINVALID, "colour" },
	{ "{" FT "," QC "}", TLY_EINVALID, "name" },
	{ "{'name':''," FT "," QC "}", TLY_EINVALID, "name" },
	{ "{'name':7," FT "," QC "}", TLY_EINVALID, "name" },
	{ "{" NM ",'instructions':5," FT "," QC "}", TLY_EINVALID, "instructions" },
	{ "{" NM "," QC "}", TLY_EINVALID, "fields" },
	{ "{" NM ",'fields':[]," QC "}", TLY_EINVALID, "fields" },
	{ "{" NM ",'fields':{'name':'t','type':'text'}," QC "}", TLY_EINVALID, "fields" },
	{ S_("'min_responses':1"), TLY_EINVALID, "questions" },
	{ S_("'questions':[]"), TLY_EINVALID, "questions" },
	{ S_("'questions':'q'"), TLY_EINVALID, "questions" },
	/* fields */
	{ "{" NM ",'fields':[5]," QC "}", TLY_EINVALID, "fields[0]" },
	{ "{" NM ",'fields':[{'type':'text'}]," QC "}", TLY_EINVALID, "fields[0].name" },
	{ "{" NM ",'fields':[{'name':'1abc','type':'text'}]," QC "}", TLY_EINVALID, "fields[0].name" },
	{ "{" NM ",'fields':[{'name':'a-b','type':'text'}]," QC "}", TLY_EINVALID, "fields[0].name" },
	{ "{" NM ",'fields':[{'name':'','type':'text'}]," QC "}", TLY_EINVALID, "fields[0].name" },
	{ "{" NM ",'fields':[{'name':'a','type':'text'},{'name':'a','type':'image'}]," QC "}",
	  TLY_EINVALID, "fields[1].name" },
	{ "{" NM ",'fields':[{'name':'a','type':'video'}]," QC "}", TLY_EINVALID, "fields[0].type" },
	{ "{" NM ",'fields':[{'name':'a'}]," QC "}", TLY_EINVALID, "fields[0].type" },
	{ "{" NM ",'fields':[{'name':'a','type':'Text'}]," QC "}", TLY_EINVALID, "fields[0].type" },
	{ "{" NM ",'fields':[{'name':'a','type':'text'},{'name':'b','type':'text','required':'no'}]," QC "}",
	  TLY_EINVALID, "fields[1].required" },
	{ "{" NM ",'fields':[{'name':'a','type':'text','colour':1}]," QC "}", TLY_EINVALID, "fields[0].colour" },
	/* questions: common */
	{ SQ("7"), TLY_EINVALID, "questions[0]" },
	{ SQ("{'type':'choice','options':['a']}"), TLY_EINVALID, "questions[0].name" },
	{ SQ("{'name':'9q','type':'choice','options':['a']}"), TLY_EINVALID, "questions[0].name" },
	{ SQ("{'name':'q','type':'choice','options':['a']},{'name':'q','type':'rating'}"),
	  TLY_EINVALID, "questions[1].name" },
	{ SQ("{'name':'q','type':'slider'}"), TLY_EINVALID, "questions[0].type" },
	{ SQ("{'name':'q'}"), TLY_EINVALID, "questions[0].type" },
	{ SQ("{'name':'q','type':'choice','options':['a'],'required':1}"), TLY_EINVALID,
	  "questions[0].required" },
	{ SQ("{'name':'q','type':'choice','options':['a'],'labels':['b']}"), TLY_EINVALID,
	  "questions[0].labels" },
	{ SQ("{'name':'q','type':'rating','options':['a']}"), TLY_EINVALID, "questions[0].options" },
	/* choice / multi_choice */
	{ SQ("{'name':'q','type':'choice'}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'q','type':'choice','options':[]}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'q','type':'choice','options':'a'}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'q','type':'choice','options':['a','a']}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'q','type':'choice','options':['a','']}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'q','type':'choice','options':['a',3]}"), TLY_EINVALID, "questions[0].options" },
	{ SQ("{'name':'a','type':'rating'},{'name':'b','type':'text'},{'name':'c','type':'choice','options':[]}"),
	  TLY_EINVALID, "questions[2].options" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'min_selected':4}"),
	  TLY_EINVALID, "questions[0].min_selected" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'min_selected':-1}"),
	  TLY_EINVALID, "questions[0].min_selected" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'max_selected':0}"),
	  TLY_EINVALID, "questions[0].max_selected" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'max_selected':4}"),
	  TLY_EINVALID, "questions[0].max_selected" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'min_selected':3,'max_selected':2}"),
	  TLY_EINVALID, "questions[0].min_selected" },
	{ SQ("{'name':'q','type':'multi_choice','options':['a','b']}"
	     ",{'name':'r','type':'multi_choice','options':['a','a']}"),
	  TLY_EINVALID, "questions[1].options" },
	/* spans / boxes */
	{ SAQ("{'name':'q','type':'spans','field':'img','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'spans','field':'resp','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'spans','field':'chat','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'spans','field':'nope','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'spans','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'spans','field':'text'}"), TLY_EINVALID, "questions[0].labels" },
	{ SAQ("{'name':'q','type':'spans','field':'md','labels':['X','X']}"), TLY_EINVALID, "questions[0].labels" },
	{ SAQ("{'name':'q','type':'boxes','field':'text','labels':['X']}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'boxes','field':'img','labels':[]}"), TLY_EINVALID, "questions[0].labels" },
	{ SAQ("{'name':'q','type':'boxes','field':'img','labels':['X'],'options':['a']}"), TLY_EINVALID, "questions[0].options" },
	/* ranking / compare */
	{ SAQ("{'name':'q','type':'ranking','field':'text'}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'ranking'}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'compare','field':'chat'}"), TLY_EINVALID, "questions[0].field" },
	{ SAQ("{'name':'q','type':'compare','field':'resp','allow_tie':'yes'}"), TLY_EINVALID,
	  "questions[0].allow_tie" },
	{ SAQ("{'name':'q','type':'ranking','field':'resp','allow_tie':true}"), TLY_EINVALID, "questions[0].allow_tie" },
	/* rating */
	{ SQ("{'name':'q','type':'rating','min':5,'max':5}"), TLY_EINVALID, "questions[0].max" },
	{ SQ("{'name':'q','type':'rating','min':6}"), TLY_EINVALID, "questions[0].max" },
	{ SQ("{'name':'q','type':'rating','min':'1'}"), TLY_EINVALID, "questions[0].min" },
	{ SQ("{'name':'q','type':'rating','min':1.5}"), TLY_EINVALID, "questions[0].min" },
	{ SQ("{'name':'q','type':'rating','max':2000000}"), TLY_EINVALID, "questions[0].max" },
	{ SQ("{'name':'q','type':'rating','min':-1000001}"), TLY_EINVALID, "questions[0].min" },
	/* text */
	{ SQ("{'name':'q','type':'text','min_length':10,'max_length':5}"), TLY_EINVALID,
	  "questions[0].min_length" },
	{ SQ("{'name':'q','type':'text','max_length':0}"), TLY_EINVALID, "questions[0].max_length" },
	{ SQ("{'name':'q','type':'text','min_length':-1}"), TLY_EINVALID, "questions[0].min_length" },
	{ SQ("{'name':'q','type':'text','max_length':true}"), TLY_EINVALID, "questions[0].max_length" },
	/* responses and leases */
	{ S_(QC ",'min_responses':0"), TLY_EINVALID, "min_responses" },
	{ S_(QC ",'min_responses':101"), TLY_EINVALID, "min_responses" },
	{ S_(QC ",'min_responses':'3'"), TLY_EINVALID, "min_responses" },
	{ S_(QC ",'min_responses':2.5"), TLY_EINVALID, "min_responses" },
	{ S_(QC ",'min_responses':3,'max_responses':2"), TLY_EINVALID, "max_responses" },
	{ S_(QC ",'max_responses':101"), TLY_EINVALID, "max_responses" },
	{ S_(QC ",'max_responses':0"), TLY_EINVALID, "max_responses" },
	{ S_(QC ",'lease_seconds':0"), TLY_EINVALID, "lease_seconds" },
	{ S_(QC ",'lease_seconds':86401"), TLY_EINVALID, "lease_seconds" },
	{ S_(QC ",'lease_seconds':-5"), TLY_EINVALID, "lease_seconds" },
};

static void test_bad_schemas(void **state)
{
	char what[64];

	(void)state;
	assert_true(sizeof(bad_schemas) / sizeof(bad_schemas[0]) >= 25);
	for (size_t i = 0; i < sizeof(bad_schemas) / sizeof(bad_schemas[0]); i++) {
		json_t *in = J(bad_schemas[i].json);
		snprintf(what, sizeof(what), "bad_schemas[%zu]", i);
		expect_parse(in, bad_schemas[i].code, bad_schemas[i].field, what);
		json_decref(in);
	}
}

/* the same rows with the fault fixed parse: the table rows fail for the
 * stated reason only (spot checks of near-misses that must pass) */
static const char *const good_schemas[] = {
	SQ("{'name':'q','type':'rating','min':-1000000,'max':1000000}"),
	SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'min_selected':3,'max_selected':3}"),
	SQ("{'name':'q','type':'multi_choice','options':['a','b','c'],'min_selected':0,'max_selected':1}"),
	SQ("{'name':'q','type':'text','min_length':5,'max_length':5}"),
	SQ("{'name':'_','type':'choice','options':['a'],'label':'L','description':'D'}"),
	SAQ("{'name':'q','type':'spans','field':'md','labels':['X']}"),
	SAQ("{'name':'q','type':'compare','field':'resp','allow_tie':true}"),
	S_(QC ",'min_responses':100,'max_responses':100,'lease_seconds':86400"),
	S_(QC ",'min_responses':1,'max_responses':100,'lease_seconds':1"),
	"{" NM ",'instructions':null," FT "," QC "}",
	"{" NM ",'fields':[{'name':'a_1','type':'text','required':false,'label':'A','description':'d'}]," QC "}",
};

static void test_good_schemas(void **state)
{
	char what[64];

	(void)state;
	for (size_t i = 0; i < sizeof(good_schemas) / sizeof(good_schemas[0]); i++) {
		json_t *in = J(good_schemas[i]);
		snprintf(what, sizeof(what), "good_schemas[%zu]", i);
		expect_parse(in, TLY_OK, "", what);
		json_decref(in);
	}
}

/* size limits built programmatically */
static void test_schema_limits(void **state)
{
	char *buf, *list, name[256];
	size_t cap = 200000;
	json_t *in;

	(void)state;
	buf = malloc(cap);
	assert_non_null(buf);

	/* name: 200 bytes ok, 201 refused */
	memset(name, 'n', 200);
	name[200] = '\0';
	snprintf(buf, cap, "{'name':'%s'," FT "," QC "}", name);
	in = J(buf);
	expect_parse(in, TLY_OK, "", "name 200");
	json_decref(in);
	strcat(name, "n");
	snprintf(buf, cap, "{'name':'%s'," FT "," QC "}", name);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "name", "name 201");
	json_decref(in);

	/* identifier: 64 ok, 65 refused */
	memset(name, 'f', 64);
	name[64] = '\0';
	snprintf(buf, cap, "{" NM ",'fields':[{'name':'%s','type':'text'}]," QC "}", name);
	in = J(buf);
	expect_parse(in, TLY_OK, "", "field name 64");
	json_decref(in);
	strcat(name, "f");
	snprintf(buf, cap, "{" NM ",'fields':[{'name':'%s','type':'text'}]," QC "}", name);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "fields[0].name", "field name 65");
	json_decref(in);

	/* fields: 64 ok, 65 refused */
	list = repeat("{'name':'f%d','type':'text'}", 64);
	snprintf(buf, cap, "{" NM ",'fields':[%s]," QC "}", list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_OK, "", "64 fields");
	json_decref(in);
	list = repeat("{'name':'f%d','type':'text'}", 65);
	snprintf(buf, cap, "{" NM ",'fields':[%s]," QC "}", list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "fields", "65 fields");
	json_decref(in);

	/* questions: 64 ok, 65 refused */
	list = repeat("{'name':'q%d','type':'rating'}", 64);
	snprintf(buf, cap, "{" NM "," FT ",'questions':[%s]}", list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_OK, "", "64 questions");
	json_decref(in);
	list = repeat("{'name':'q%d','type':'rating'}", 65);
	snprintf(buf, cap, "{" NM "," FT ",'questions':[%s]}", list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "questions", "65 questions");
	json_decref(in);

	/* options: 1000 ok, 1001 refused */
	list = repeat("'o%d'", 1000);
	snprintf(buf, cap, SQ("{'name':'q','type':'choice','options':[%s]}"), list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_OK, "", "1000 options");
	json_decref(in);
	list = repeat("'o%d'", 1001);
	snprintf(buf, cap, SQ("{'name':'q','type':'choice','options':[%s]}"), list);
	free(list);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "questions[0].options", "1001 options");
	json_decref(in);

	/* an option label of 257 bytes */
	memset(name, 'x', 255);
	name[255] = '\0';
	snprintf(buf, cap, SQ("{'name':'q','type':'choice','options':['%s','%sxx']}"), name, name);
	in = J(buf);
	expect_parse(in, TLY_EINVALID, "questions[0].options", "label 257 bytes");
	json_decref(in);
	free(buf);
}

/* ---- task data --------------------------------------------------------------- */

static const char data_schema[] =
	"{'name':'D','fields':["
	" {'name':'text','type':'text'},{'name':'md','type':'markdown'},"
	" {'name':'img','type':'image'},{'name':'chat','type':'chat'},"
	" {'name':'resp','type':'responses'},{'name':'opt','type':'text','required':false}],"
	" 'questions':[{'name':'q','type':'rating'}]}";

static const char data_base[] =
	"{'text':'hello','md':'*hi*','img':'https://example.com/a.png',"
	" 'chat':[{'role':'user','content':'hi'},{'role':'assistant','content':'hello'}],"
	" 'resp':['a','b']}";

struct data_row {
	const char *key;   /* field to set in the base data */
	const char *value; /* JSON of the new value; NULL removes the key */
	enum tly_code code;
	const char *field;
};

static const struct data_row data_rows[] = {
	{ "opt", "'extra'", TLY_OK, "" },
	{ "opt", "null", TLY_OK, "" },
	{ "text", NULL, TLY_EINVALID, "data.text" },
	{ "text", "null", TLY_EINVALID, "data.text" },
	{ "text", "5", TLY_EINVALID, "data.text" },
	{ "text", "['a']", TLY_EINVALID, "data.text" },
	{ "text", "''", TLY_OK, "" },
	{ "md", NULL, TLY_EINVALID, "data.md" },
	{ "md", "{}", TLY_EINVALID, "data.md" },
	{ "img", "'javascript:alert(1)'", TLY_EINVALID, "data.img" },
	{ "img", "'ftp://example.com/a.png'", TLY_EINVALID, "data.img" },
	{ "img", "'data:text/html,<script>alert(1)</script>'", TLY_EINVALID, "data.img" },
	{ "img", "'//example.com/a.png'", TLY_EINVALID, "data.img" },
	{ "img", "''", TLY_EINVALID, "data.img" },
	{ "img", "5", TLY_EINVALID, "data.img" },
	{ "img", "' https://example.com/a.png'", TLY_EINVALID, "data.img" },
	{ "img", "'http://example.com/a.png'", TLY_OK, "" },
	{ "img", "'data:image/png;base64,iVBORw0KGgo='", TLY_OK, "" },
	{ "img", NULL, TLY_EINVALID, "data.img" },
	{ "chat", "'hi'", TLY_EINVALID, "data.chat" },
	{ "chat", "[]", TLY_EINVALID, "data.chat" },
	{ "chat", "['hi']", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'role':'user'}]", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'content':'x'}]", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'role':'user','content':5}]", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'role':1,'content':'x'}]", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'role':'user','content':'x'},{'role':'user','content':null}]", TLY_EINVALID, "data.chat" },
	{ "chat", "[{'role':'system','content':''}]", TLY_OK, "" },
	{ "resp", "[]", TLY_EINVALID, "data.resp" },
	{ "resp", "[1]", TLY_EINVALID, "data.resp" },
	{ "resp", "['a',null]", TLY_EINVALID, "data.resp" },
	{ "resp", "'a'", TLY_EINVALID, "data.resp" },
	{ "resp", "['only one']", TLY_OK, "" },
	{ "opt", "5", TLY_EINVALID, "data.opt" },
};

static void check_data_row(const struct tly_schema *s, const json_t *data, enum tly_code code,
			   const char *field, const char *what)
{
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	rc = tly_schema_check_data(s, data, &err);
	if (rc != code)
		fail_msg("%s: code %d (%s: %s), expected %d (%s)", what, rc, err.field, err.message,
			 code, field);
	if (rc != TLY_OK) {
		if (strcmp(err.field, field) != 0)
			fail_msg("%s: field \"%s\", expected \"%s\"", what, err.field, field);
		if (strncmp(err.message, field, strlen(field)) != 0)
			fail_msg("%s: message \"%s\" does not start with the path", what, err.message);
	}
}

static void test_data_checks(void **state)
{
	json_t *sj = J(data_schema), *base = J(data_base);
	struct tly_schema s;
	struct tly_err err;
	char what[64];

	(void)state;
	assert_int_equal(tly_schema_parse(sj, &s, &err), TLY_OK);
	check_data_row(&s, base, TLY_OK, "", "base");
	for (size_t i = 0; i < sizeof(data_rows) / sizeof(data_rows[0]); i++) {
		json_t *d = json_deep_copy(base);
		if (data_rows[i].value)
			json_object_set_new(d, data_rows[i].key, J(data_rows[i].value));
		else
			json_object_del(d, data_rows[i].key);
		snprintf(what, sizeof(what), "data_rows[%zu] (%s)", i, data_rows[i].key);
		check_data_row(&s, d, data_rows[i].code, data_rows[i].field, what);
		json_decref(d);
	}

	/* data itself not an object */
	{
		static const char *const not_obj[] = { "[]", "'text'", "null", "1" };
		for (size_t i = 0; i < 4; i++) {
			json_t *d = J(not_obj[i]);
			check_data_row(&s, d, TLY_EINVALID, "data", not_obj[i]);
			json_decref(d);
		}
		check_data_row(&s, NULL, TLY_EINVALID, "data", "NULL data");
	}

	/* responses: 64 ok, 65 refused */
	{
		json_t *d = json_deep_copy(base), *r = json_array();
		for (int i = 0; i < 64; i++)
			json_array_append_new(r, json_string("x"));
		json_object_set(d, "resp", r);
		check_data_row(&s, d, TLY_OK, "", "64 responses");
		json_array_append_new(r, json_string("x"));
		check_data_row(&s, d, TLY_EINVALID, "data.resp", "65 responses");
		json_decref(r);
		json_decref(d);
	}
	tly_schema_clear(&s);
	json_decref(sj);
	json_decref(base);
}

/* ---- answers ------------------------------------------------------------------ */

static const char answer_schema[] =
	"{'name':'A','fields':["
	" {'name':'text','type':'text'},{'name':'img','type':'image'},"
	" {'name':'resp','type':'responses'}],"
	" 'questions':["
	"  {'name':'sentiment','type':'choice','options':['positive','negative','neutral']},"
	"  {'name':'tags','type':'multi_choice','options':['a','b','c','d'],'min_selected':1,'max_selected':2},"
	"  {'name':'ents','type':'spans','field':'text','labels':['PER','LOC']},"
	"  {'name':'objs','type':'boxes','field':'img','labels':['cat','dog']},"
	"  {'name':'rank','type':'ranking','field':'resp'},"
	"  {'name':'pref','type':'compare','field':'resp','allow_tie':true},"
	"  {'name':'pref2','type':'compare','field':'resp','required':false},"
	"  {'name':'stars','type':'rating'},"
	"  {'name':'note','type':'text','min_length':2,'max_length':5,'required':false},"
	"  {'name':'opt','type':'choice','options':['x'],'required':false},"
	"  {'name':'anyn','type':'multi_choice','options':['p','q'],'required':false}]}";

/* "héllo wörld": 11 code points, 13 bytes */
static const char answer_data[] =
	"{'text':'h\xc3\xa9llo w\xc3\xb6rld','img':'https://example.com/cat.jpg','resp':['r0','r1','r2']}";

static const char answer_base[] =
	"{'sentiment':'positive','tags':['a'],"
	" 'ents':[{'start':0,'end':11,'label':'PER'}],"
	" 'objs':[{'x':0,'y':0,'w':1,'h':1,'label':'cat'}],"
	" 'rank':[2,0,1],'pref':'tie','stars':5}";

struct answer_row {
	const char *key;   /* question to set */
	const char *value; /* JSON; NULL removes the answer */
	enum tly_code code;
	const char *field;
};

#define OK_(k, v) { k, v, TLY_OK, "" }
#define BAD(k, v) { k, v, TLY_EINVALID, "answers." k }

static const struct answer_row answer_rows[] = {
	/* choice */
	OK_("sentiment", "'neutral'"),
	BAD("sentiment", "'happy'"),
	BAD("sentiment", "'Positive'"),
	BAD("sentiment", "1"),
	BAD("sentiment", "['positive']"),
	BAD("sentiment", NULL),
	BAD("sentiment", "null"),
	/* multi_choice: 1..2 selected, unique, known */
	OK_("tags", "['a','b']"),
	OK_("tags", "['d']"),
	BAD("tags", "[]"),
	BAD("tags", "['a','b','c']"),
	BAD("tags", "['a','a']"),
	BAD("tags", "['z']"),
	BAD("tags", "'a'"),
	BAD("tags", "[1]"),
	OK_("anyn", "[]"),
	OK_("anyn", "['p','q']"),
	BAD("anyn", "['p','p']"),
	/* spans: bounds in code points (11) */
	OK_("ents", "[{'start':0,'end':11,'label':'LOC'}]"),
	OK_("ents", "[{'start':10,'end':11,'label':'PER'}]"),
	OK_("ents", "[{'start':0,'end':5,'label':'PER'},{'start':6,'end':11,'label':'LOC'}]"),
	OK_("ents", "[]"),
	OK_("ents", "[{'start':0.0,'end':11.0,'label':'LOC'}]"),
	BAD("ents", "[{'start':0,'end':12,'label':'PER'}]"),
	BAD("ents", "[{'start':0,'end':13,'label':'PER'}]"), /* the byte length */
	BAD("ents", "[{'start':11,'end':12,'label':'PER'}]"),
	BAD("ents", "[{'start':-1,'end':3,'label':'PER'}]"),
	BAD("ents", "[{'start':5,'end':5,'label':'PER'}]"),
	BAD("ents", "[{'start':6,'end':5,'label':'PER'}]"),
	BAD("ents", "[{'start':'0','end':5,'label':'PER'}]"),
	BAD("ents", "[{'start':0.5,'end':5,'label':'PER'}]"),
	BAD("ents", "[{'start':0,'end':5}]"),
	BAD("ents", "[{'start':0,'end':5,'label':'ORG'}]"),
	BAD("ents", "[{'start':0,'end':5,'label':'PER'},{'start':0,'end':12,'label':'PER'}]"),
	BAD("ents", "[[0,5,'PER']]"),
	BAD("ents", "{'start':0,'end':5,'label':'PER'}"),
	/* boxes: relative coordinates */
	OK_("objs", "[{'x':0.25,'y':0.25,'w':0.5,'h':0.75,'label':'dog'}]"),
	OK_("objs", "[{'x':0.5,'y':0.5,'w':0.5,'h':0.5,'label':'cat'},{'x':0,'y':0,'w':0.1,'h':0.1,'label':'dog'}]"),
	OK_("objs", "[]"),
	BAD("objs", "[{'x':0.5,'y':0,'w':0.6,'h':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':0.5,'w':0.5,'h':0.6,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':0,'w':0,'h':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':0,'w':0.5,'h':-0.1,'label':'cat'}]"),
	BAD("objs", "[{'x':-0.01,'y':0,'w':0.5,'h':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':-1,'w':0.5,'h':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':'0','y':0,'w':0.5,'h':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':0,'w':0.5,'label':'cat'}]"),
	BAD("objs", "[{'x':0,'y':0,'w':0.5,'h':0.5,'label':'bird'}]"),
	BAD("objs", "[{'x':0,'y':0,'w':2,'h':2,'label':'cat'}]"),
	BAD("objs", "{'x':0,'y':0,'w':1,'h':1,'label':'cat'}"),
	/* ranking: permutation of 0..2 */
	OK_("rank", "[0,1,2]"),
	OK_("rank", "[1,2,0]"),
	BAD("rank", "[0,1]"),
	BAD("rank", "[0,1,2,3]"),
	BAD("rank", "[0,1,1]"),
	BAD("rank", "[0,1,3]"),
	BAD("rank", "[-1,0,1]"),
	BAD("rank", "['0',1,2]"),
	BAD("rank", "[0,1,1.5]"),
	BAD("rank", "'012'"),
	BAD("rank", "[]"),
	/* compare with tie */
	OK_("pref", "0"),
	OK_("pref", "2"),
	BAD("pref", "3"),
	BAD("pref", "-1"),
	BAD("pref", "'TIE'"),
	BAD("pref", "'1'"),
	BAD("pref", "1.5"),
	BAD("pref", "true"),
	/* compare without tie (optional) */
	OK_("pref2", "1"),
	OK_("pref2", "null"),
	BAD("pref2", "'tie'"),
	BAD("pref2", "3"),
	/* rating 1..5 */
	OK_("stars", "1"),
	OK_("stars", "3"),
	BAD("stars", "0"),
	BAD("stars", "6"),
	BAD("stars", "'5'"),
	BAD("stars", "4.5"),
	BAD("stars", "[5]"),
	BAD("stars", NULL),
	/* text: 2..5 code points (optional) */
	OK_("note", "'ab'"),
	OK_("note", "'h\xc3\xa9llo'"),           /* 5 code points, 6 bytes */
	OK_("note", "'\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9'"), /* 5 code points, 10 bytes */
	OK_("note", "'\xf0\x9f\x98\x80\xf0\x9f\x98\x80'"),     /* 2 emoji */
	BAD("note", "'a'"),
	BAD("note", "''"),
	BAD("note", "'h\xc3\xa9llo!'"),
	BAD("note", "5"),
	/* optional choice */
	OK_("opt", "'x'"),
	OK_("opt", "null"),
	BAD("opt", "'y'"),
	/* unknown answer names */
	BAD("extra", "1"),
	BAD("Sentiment", "'positive'"),
};

static void check_answer(const struct tly_schema *s, const json_t *data, const json_t *answers,
			 enum tly_code code, const char *field, const char *what)
{
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	rc = tly_schema_check_answers(s, data, answers, &err);
	if (rc != code)
		fail_msg("%s: code %d (%s: %s), expected %d (%s)", what, rc, err.field, err.message,
			 code, field);
	if (rc != TLY_OK) {
		if (strcmp(err.field, field) != 0)
			fail_msg("%s: field \"%s\", expected \"%s\" (%s)", what, err.field, field,
				 err.message);
		if (strncmp(err.message, field, strlen(field)) != 0)
			fail_msg("%s: message \"%s\" does not start with the path", what, err.message);
	}
}

static void test_answers(void **state)
{
	json_t *sj = J(answer_schema), *data = J(answer_data), *base = J(answer_base);
	struct tly_schema s;
	struct tly_err err;
	char what[160];

	(void)state;
	assert_int_equal(tly_schema_parse(sj, &s, &err), TLY_OK);
	assert_int_equal(tly_schema_check_data(&s, data, &err), TLY_OK);
	check_answer(&s, data, base, TLY_OK, "", "base answers");
	for (size_t i = 0; i < sizeof(answer_rows) / sizeof(answer_rows[0]); i++) {
		json_t *a = json_deep_copy(base);
		if (answer_rows[i].value)
			json_object_set_new(a, answer_rows[i].key, J(answer_rows[i].value));
		else
			json_object_del(a, answer_rows[i].key);
		snprintf(what, sizeof(what), "answer_rows[%zu] %s=%s", i, answer_rows[i].key,
			 answer_rows[i].value ? answer_rows[i].value : "(absent)");
		check_answer(&s, data, a, answer_rows[i].code, answer_rows[i].field, what);
		json_decref(a);
	}
	/* spans and boxes: at most 10,000 a question, and the error says so */
	for (int q = 0; q < 2; q++) {
		const char *key = q ? "objs" : "ents";
		json_t *a = json_deep_copy(base), *items = json_array();
		for (int i = 0; i < 10000; i++)
			json_array_append_new(items, q ? J("{'x':0,'y':0,'w':1,'h':1,'label':'dog'}")
						       : J("{'start':0,'end':1,'label':'LOC'}"));
		json_object_set(a, key, items);
		check_answer(&s, data, a, TLY_OK, "", q ? "10,000 boxes" : "10,000 spans");
		json_array_append_new(items, json_deep_copy(json_array_get(items, 0)));
		check_answer(&s, data, a, TLY_EINVALID, q ? "answers.objs" : "answers.ents",
			     q ? "10,001 boxes" : "10,001 spans");
		tly_err_clear(&err);
		assert_int_equal(tly_schema_check_answers(&s, data, a, &err), TLY_EINVALID);
		assert_non_null(strstr(err.message, "must be an array of at most 10000"));
		assert_non_null(strstr(err.message, q ? "{x, y, w, h, label}" : "{start, end, label}"));
		json_decref(items);
		json_decref(a);
	}
	/* answers must be an object */
	{
		json_t *a = J("[]");
		check_answer(&s, data, a, TLY_EINVALID, "answers", "answers array");
		json_decref(a);
		check_answer(&s, data, NULL, TLY_EINVALID, "answers", "answers NULL");
	}
	tly_schema_clear(&s);
	json_decref(sj);
	json_decref(data);
	json_decref(base);
}

/* spans over astral-plane text and over markdown; ranking/compare follow the
 * number of responses of each task */
static void test_answers_depend_on_data(void **state)
{
	json_t *sj = J("{'name':'S','fields':[{'name':'md','type':'markdown'},{'name':'resp','type':'responses'}],"
		       " 'questions':[{'name':'sp','type':'spans','field':'md','labels':['E']},"
		       "  {'name':'rk','type':'ranking','field':'resp'},"
		       "  {'name':'cp','type':'compare','field':'resp'}]}");
	/* "a😀b": 3 code points, 6 bytes */
	json_t *d3 = J("{'md':'a\xf0\x9f\x98\x80" "b','resp':['x','y']}");
	json_t *d5 = J("{'md':'abcde','resp':['x','y','z','w']}");
	struct tly_schema s;
	struct tly_err err;
	json_t *a;

	(void)state;
	assert_int_equal(tly_schema_parse(sj, &s, &err), TLY_OK);
	a = J("{'sp':[{'start':1,'end':3,'label':'E'}],'rk':[1,0],'cp':1}");
	check_answer(&s, d3, a, TLY_OK, "", "3 code points, end 3");
	check_answer(&s, d5, a, TLY_EINVALID, "answers.rk", "ranking of 2 on a 4-response task");
	json_decref(a);
	a = J("{'sp':[{'start':1,'end':4,'label':'E'}],'rk':[1,0],'cp':1}");
	check_answer(&s, d3, a, TLY_EINVALID, "answers.sp", "3 code points, end 4");
	check_answer(&s, d5, a, TLY_EINVALID, "answers.rk", "end 4 ok on 5, ranking of 2 on 4");
	json_decref(a);
	a = J("{'sp':[{'start':0,'end':5,'label':'E'}],'rk':[3,1,0,2],'cp':3}");
	check_answer(&s, d5, a, TLY_OK, "", "4 responses");
	check_answer(&s, d3, a, TLY_EINVALID, "answers.sp", "end 5 on 3 code points");
	json_decref(a);
	a = J("{'sp':[],'rk':[1,0],'cp':2}");
	check_answer(&s, d3, a, TLY_EINVALID, "answers.cp", "compare index 2 of 2 responses");
	json_decref(a);
	tly_schema_clear(&s);
	json_decref(sj);
	json_decref(d3);
	json_decref(d5);
}

/* an optional question absent, null, or answered; all optional absent */
static void test_optional_questions(void **state)
{
	json_t *sj = J("{'name':'O','fields':[{'name':'t','type':'text'}],"
		       " 'questions':[{'name':'a','type':'rating','required':false},"
		       "  {'name':'b','type':'text','required':false}]}");
	json_t *data = J("{'t':'x'}"), *a;
	struct tly_schema s;
	struct tly_err err;

	(void)state;
	assert_int_equal(tly_schema_parse(sj, &s, &err), TLY_OK);
	a = J("{}");
	check_answer(&s, data, a, TLY_OK, "", "all absent");
	json_decref(a);
	a = J("{'a':null,'b':null}");
	check_answer(&s, data, a, TLY_OK, "", "all null");
	json_decref(a);
	a = J("{'a':3}");
	check_answer(&s, data, a, TLY_OK, "", "one answered");
	json_decref(a);
	a = J("{'a':9}");
	check_answer(&s, data, a, TLY_EINVALID, "answers.a", "out of range");
	json_decref(a);
	a = J("{'c':1}");
	check_answer(&s, data, a, TLY_EINVALID, "answers.c", "unknown");
	json_decref(a);
	tly_schema_clear(&s);
	json_decref(sj);
	json_decref(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_schema),
		cmocka_unit_test(test_defaults_filled),
		cmocka_unit_test(test_numbers_normalized),
		cmocka_unit_test(test_bad_schemas),
		cmocka_unit_test(test_good_schemas),
		cmocka_unit_test(test_schema_limits),
		cmocka_unit_test(test_data_checks),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_answers_depend_on_data),
		cmocka_unit_test(test_optional_questions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
