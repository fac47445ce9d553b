/* cmd_admin.c — set-up commands: init, org, user, key, project; serve and
 * routes. Each prints only the new object's id (or key) on stdout so that
 * scripts can capture it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "http/server.h"
#include "jsontext.h"

#define SCHEMA_FILE_MAX (4u << 20)

static const char *const valued[] = { "--org", "--email", "--role", "--user", "--schema",
				      "--format", "--status", "--listen", "--max-body", "--threads",
				      "--export-threads", "--max-exports", "--max-body-total",
				      NULL };

static int usage_fail(const char *msg)
{
	fprintf(stderr, "tally: %s\n", msg);
	return EXIT_BAD;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_open(c, 1);
}

int cmd_org(struct cli *c, int argc, char **argv)
{
	const char *sub = cli_arg(argc, argv, 0, valued);
	struct tly_err err;
	char id[32];
	json_t *list = NULL;
	int rc;

	tly_err_clear(&err);
	if (!sub || (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0))
		return usage_fail("usage: tally org add NAME | tally org list");
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	if (strcmp(sub, "add") == 0) {
		const char *name = cli_arg(argc, argv, 1, valued);
		if (!name)
			return usage_fail("usage: tally org add NAME");
		if (tly_org_add(c->t, name, id, &err) != TLY_OK)
			return cli_fail(&err);
		printf("%s\n", id);
		return EXIT_OK;
	}
	if (tly_org_list(c->t, &list, &err) != TLY_OK)
		return cli_fail(&err);
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *o = json_array_get(list, i);
		printf("%s\t%s\n", json_string_value(json_object_get(o, "id")),
		       json_string_value(json_object_get(o, "name")));
	}
	json_decref(list);
	return EXIT_OK;
}

/* Reads a password from stdin: one line, newline dropped. */
static int read_password(char *buf, size_t size)
{
	size_t n;

	if (!fgets(buf, (int)size, stdin))
		return -1;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

int cmd_user(struct cli *c, int argc, char **argv)
{
	const char *sub = cli_arg(argc, argv, 0, valued);
	const char *org = cli_opt(argc, argv, "--org"), *email = cli_opt(argc, argv, "--email");
	const char *role = cli_opt(argc, argv, "--role");
	char pw[1100], id[32];
	struct tly_err err;
	int rc, with_pw = cli_flag(argc, argv, "--password-stdin");

	tly_err_clear(&err);
	if (!sub || strcmp(sub, "add") != 0 || !org || !email || !role)
		return usage_fail("usage: tally user add --org ORG --email EMAIL --role owner|manager|reviewer|annotator [--password-stdin]");
	if (with_pw && read_password(pw, sizeof(pw)) != 0)
		return usage_fail("--password-stdin: nothing on stdin");
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	if (tly_user_add(c->t, org, email, role, with_pw ? pw : NULL, id, &err) != TLY_OK)
		return cli_fail(&err);
	printf("%s\n", id);
	return EXIT_OK;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
	const char *sub = cli_arg(argc, argv, 0, valued);
	char key[TLY_KEY_MAX], id[32];
	struct tly_err err;
	int rc;

	tly_err_clear(&err);
	if (sub && strcmp(sub, "create") == 0) {
		const char *user = cli_opt(argc, argv, "--user");
		if (!user)
			return usage_fail("usage: tally key create --user EMAIL [--org ORG]");
		if ((rc = cli_open(c, 0)) != EXIT_OK)
			return rc;
		if (tly_key_create(c->t, user, cli_opt(argc, argv, "--org"), key, id, &err) != TLY_OK)
			return cli_fail(&err);
		printf("%s\n", key);
		fprintf(stderr, "tally: created %s (the key is shown only this once)\n", id);
		return EXIT_OK;
	}
	if (sub && strcmp(sub, "revoke") == 0) {
		const char *kid = cli_arg(argc, argv, 1, valued);
		if (!kid)
			return usage_fail("usage: tally key revoke KEY_ID");
		if ((rc = cli_open(c, 0)) != EXIT_OK)
			return rc;
		if (tly_key_revoke(c->t, kid, &err) != TLY_OK)
			return cli_fail(&err);
		return EXIT_OK;
	}
	return usage_fail("usage: tally key create --user EMAIL [--org ORG] | tally key revoke KEY_ID");
}

int cmd_project(struct cli *c, int argc, char **argv)
{
	const char *sub = cli_arg(argc, argv, 0, valued);
	const char *org = cli_opt(argc, argv, "--org");
	struct tly_actor a;
	struct tly_err err;
	json_error_t je;
	json_t *schema = NULL, *out = NULL;
	int rc;

	tly_err_clear(&err);
	if (!sub || !org || (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0))
		return usage_fail("usage: tally project create --org ORG --schema FILE | tally project list --org ORG");
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	if (tly_actor_admin(c->t, org, &a, &err) != TLY_OK)
		return cli_fail(&err);
	if (strcmp(sub, "list") == 0) {
		char cursor[32] = "";
		do { /* every page */
			json_t *list, *next;
			if (tly_project_list(c->t, &a, *cursor ? cursor : NULL, TLY_LIST_MAX, &out,
					     &err) != TLY_OK)
				return cli_fail(&err);
			list = json_object_get(out, "projects");
			for (size_t i = 0; i < json_array_size(list); i++) {
				json_t *p = json_array_get(list, i);
				printf("%s\t%s\n", json_string_value(json_object_get(p, "id")),
				       json_string_value(json_object_get(p, "name")));
			}
			next = json_object_get(out, "next_cursor");
			snprintf(cursor, sizeof(cursor), "%s", json_is_string(next) ? json_string_value(next) : "");
			json_decref(out);
		} while (*cursor);
		return EXIT_OK;
	}
	const char *file = cli_opt(argc, argv, "--schema");
	if (!file)
		return usage_fail("usage: tally project create --org ORG --schema FILE");
	schema = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	if (!schema) {
		fprintf(stderr, "%s:%d:%d: %s\n", file, je.line, je.column, je.text);
		return EXIT_BAD;
	}
	rc = tly_project_create(c->t, &a, schema, &out, &err);
	json_decref(schema);
	if (rc != TLY_OK) {
		fprintf(stderr, "%s: ", file);
		return cli_fail(&err);
	}
	printf("%s\n", json_string_value(json_object_get(out, "id")));
	json_decref(out);
	return EXIT_OK;
}

int cmd_serve(struct cli *c, int argc, char **argv)
{
	struct tly_http_opts o = { "127.0.0.1:8080", 0, 0, 0, 0, 0 };
	const char *listen = cli_opt(argc, argv, "--listen");
	long mb, th, xt, mx, mt;
	int rc;

	if (listen)
		o.listen = listen;
	if (cli_int_opt(argc, argv, "--max-body", 1024, 1L << 32, 32L << 20, &mb) ||
	    cli_int_opt(argc, argv, "--threads", 1, 16, 1, &th) ||
	    cli_read_threads(argc, argv, "--export-threads", &xt) ||
	    cli_int_opt(argc, argv, "--max-exports", 1, 1024, TLY_HTTP_MAX_EXPORTS, &mx))
		return EXIT_BAD;
	if (cli_int_opt(argc, argv, "--max-body-total", 1024, 1L << 40, 0, &mt))
		return EXIT_BAD;
	o.max_body = (size_t)mb;
	o.max_body_total = (size_t)mt;
	o.threads = (int)th;
	o.export_threads = (int)xt;
	o.max_exports = (int)mx;
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	return tly_http_serve(c->t, &o) == 0 ? EXIT_OK : EXIT_STORE;
}

int cmd_routes(struct cli *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	tly_http_routes(stdout);
	return EXIT_OK;
}

int cmd_quality(struct cli *c, int argc, char **argv)
{
	const char *project = cli_arg(argc, argv, 0, valued);
	struct tly_actor a;
	struct tly_err err;
	json_t *out = NULL;
	char *text;
	int rc, refit = cli_flag(argc, argv, "--refit");

	tly_err_clear(&err);
	if (!project)
		return usage_fail("usage: tally quality PROJECT [--refit]");
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	if (tly_actor_for_project(c->t, project, &a, &err) != TLY_OK)
		return cli_fail(&err);
	if (refit && tly_quality_refit(c->t, &a, project, &out, &err) != TLY_OK)
		return cli_fail(&err);
	json_decref(out);
	if (tly_quality_report(c->t, &a, project, 0, &out, &err) != TLY_OK)
		return cli_fail(&err);
	text = tly_json_text(out, JSON_INDENT(2));
	json_decref(out);
	if (!text) {
		tly_err_set(&err, TLY_EINTERNAL, "", "the report could not be written out");
		return cli_fail(&err);
	}
	puts(text);
	free(text);
	return EXIT_OK;
}
