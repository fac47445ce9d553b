/* auth.c — organizations, users, memberships, API keys and passwords.
 *
 * API keys are "tly_" + 43 base64url characters (32 random bytes). Only a
 * BLAKE2b hash of the key is stored: a stolen database yields no usable key.
 * Keys are high-entropy, so a fast hash is right here; passwords, which are
 * not, get argon2id (libsodium's crypto_pwhash_str). */
#include "tallyint.h"

#include <sodium.h>
#include <string.h>

#include "util.h"

#define KEY_PREFIX "tly_"
#define KEY_RANDOM 32
#define NAME_MAX_BYTES 200

static int printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int valid_email(const char *s)
{
	const char *at = strchr(s, '@');

	if (!printable(s, 254) || !at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	return strpbrk(s, " \t\"<>,;") == NULL;
}

static void forget_keys(struct tly *t);

static enum tly_code in_tx(struct store *s, enum tly_code rc, struct tly_err *err)
{
	if (rc == TLY_OK)
		return s->ops->commit(s, err);
	s->ops->rollback(s);
	return rc;
}

enum tly_code tly_org_add(struct tly *t, const char *name, char id_out[32], struct tly_err *err)
{
	struct store *s = t->store;
	int64_t id = 0;
	enum tly_code rc;

	if (!name || !printable(name, NAME_MAX_BYTES))
		return tly_err_set(err, TLY_EINVALID, "name",
				   "organization name: 1 to %d printable bytes", NAME_MAX_BYTES);
	if (strncmp(name, "org_", 4) == 0)
		return tly_err_set(err, TLY_EINVALID, "name",
				   "organization name may not start with \"org_\" (ids do)");
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		return rc;
	rc = s->ops->org_insert(s, name, tly_now_ms(), &id, err);
	if (rc == TLY_ECONFLICT)
		tly_err_set(err, rc, "name", "an organization named \"%s\" exists already", name);
	if ((rc = in_tx(s, rc, err)) == TLY_OK)
		tly_id_encode(&t->ids, TLY_ORG, id, id_out);
	return rc;
}

enum tly_code tly_org_resolve(struct tly *t, const char *org, int64_t *id, struct tly_err *err)
{
	struct store_org o = { 0 };
	enum tly_code rc;
	int64_t n = tly_id_decode(&t->ids, TLY_ORG, org);

	rc = n ? t->store->ops->org_get(t->store, n, NULL, &o, err)
	       : t->store->ops->org_get(t->store, 0, org, &o, err);
	if (rc == TLY_OK)
		*id = o.id;
	else if (rc == TLY_ENOTFOUND)
		tly_err_set(err, rc, "org", "no organization \"%s\"", org ? org : "");
	store_org_clear(&o);
	return rc;
}


static int org_row(void *arg, const struct store_org *o)
{
	void **ctx = arg;
	struct tly *t = ctx[0];
	json_t *j = json_object();

	json_object_set_new(j, "id", tly__id(t, TLY_ORG, o->id));
	json_object_set_new(j, "name", json_string(o->name));
	json_array_append_new(ctx[1], j);
	return 0;
}

enum tly_code tly_org_list(struct tly *t, json_t **out, struct tly_err *err)
{
	json_t *list = json_array();
	void *ctx[2] = { t, list };
	enum tly_code rc = t->store->ops->org_list(t->store, org_row, ctx, err);

	if (rc != TLY_OK) {
		json_decref(list);
		list = NULL;
	}
	*out = list;
	return rc;
}

enum tly_code tly_user_add(struct tly *t, const char *org, const char *email, const char *role,
			   const char *password, char id_out[32], struct tly_err *err)
{
	struct store *s = t->store;
	struct store_user u = { 0 };
	char hash[crypto_pwhash_STRBYTES];
	enum tly_role r = tly_role_parse(role);
	int64_t org_id = 0, user_id = 0;
	enum tly_code rc;

	if (r == TLY_ROLE_NONE)
		return tly_err_set(err, TLY_EINVALID, "role",
				   "role must be owner, manager, reviewer or annotator");
	if (!email || !valid_email(email))
		return tly_err_set(err, TLY_EINVALID, "email", "not a valid email address");
	if (password && (strlen(password) < 8 || strlen(password) > 1024))
		return tly_err_set(err, TLY_EINVALID, "password",
				   "password: 8 to 1024 bytes");
	if ((rc = tly_org_resolve(t, org, &org_id, err)) != TLY_OK)
		return rc;
	if (password && crypto_pwhash_str(hash, password, strlen(password),
					  crypto_pwhash_OPSLIMIT_INTERACTIVE,
					  crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return tly_err_set(err, TLY_EINTERNAL, "", "password hashing ran out of memory");
	forget_keys(t);
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		return rc;
	rc = s->ops->user_get(s, 0, email, &u, err);
	if (rc == TLY_OK)
		user_id = u.id;
	else if (rc == TLY_ENOTFOUND)
		rc = s->ops->user_insert(s, email, password ? hash : NULL, tly_now_ms(), &user_id, err);
	if (rc == TLY_OK)
		rc = s->ops->member_set(s, org_id, user_id, r, err);
	store_user_clear(&u);
	if ((rc = in_tx(s, rc, err)) == TLY_OK)
		tly_id_encode(&t->ids, TLY_USER, user_id, id_out);
	return rc;
}

static void key_hash(const char *key, unsigned char out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)key, strlen(key), NULL, 0);
}

enum tly_code tly_key_create(struct tly *t, const char *email, const char *org,
			     char key_out[TLY_KEY_MAX], char id_out[32], struct tly_err *err)
{
	struct store *s = t->store;
	struct store_user u = { 0 };
	unsigned char rnd[KEY_RANDOM], hash[32];
	enum tly_role role;
	int64_t org_id = 0, key_id = 0;
	enum tly_code rc;

	if ((rc = s->ops->user_get(s, 0, email ? email : "", &u, err)) != TLY_OK) {
		if (rc == TLY_ENOTFOUND)
			tly_err_set(err, rc, "user", "no user with email \"%s\"", email ? email : "");
		goto out;
	}
	if (org)
		rc = tly_org_resolve(t, org, &org_id, err);
	else
		rc = s->ops->member_sole_org(s, u.id, &org_id, err);
	if (rc == TLY_OK && s->ops->member_get(s, org_id, u.id, &role, err) != TLY_OK)
		rc = tly_err_set(err, TLY_ENOTFOUND, "org", "%s is not a member of that organization",
				 email);
	if (rc != TLY_OK)
		goto out;
	randombytes_buf(rnd, sizeof(rnd));
	memcpy(key_out, KEY_PREFIX, sizeof(KEY_PREFIX));
	sodium_bin2base64(key_out + strlen(KEY_PREFIX), TLY_KEY_MAX - strlen(KEY_PREFIX), rnd,
			  sizeof(rnd), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	key_hash(key_out, hash);
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		goto out;
	rc = s->ops->key_insert(s, u.id, org_id, hash, sizeof(hash), tly_now_ms(), &key_id, err);
	if ((rc = in_tx(s, rc, err)) == TLY_OK)
		tly_id_encode(&t->ids, TLY_KEY, key_id, id_out);
out:
	sodium_memzero(rnd, sizeof(rnd));
	store_user_clear(&u);
	return rc;
}

enum tly_code tly_key_revoke(struct tly *t, const char *key_id, struct tly_err *err)
{
	struct store *s = t->store;
	int64_t id = tly_id_decode(&t->ids, TLY_KEY, key_id);
	enum tly_code rc;

	if (!id)
		return tly_err_set(err, TLY_ENOTFOUND, "key", "no such key \"%s\"", key_id);
	forget_keys(t);
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		return rc;
	rc = s->ops->key_revoke(s, id, tly_now_ms(), err);
	return in_tx(s, rc, err);
}

enum tly_code tly_authenticate(struct tly *t, const char *key, struct tly_actor *a,
			       struct tly_err *err)
{
	struct store_key k;
	unsigned char hash[32];
	size_t n = key ? strlen(key) : 0;
	int64_t version;
	unsigned set, w;
	enum tly_code rc;

	memset(a, 0, sizeof(*a));
	if (n < strlen(KEY_PREFIX) + 8 || n >= TLY_KEY_MAX || strncmp(key, KEY_PREFIX, 4) != 0)
		return tly_err_set(err, TLY_EUNAUTH, "", "malformed API key");
	key_hash(key, hash);
	set = (hash[0] | (unsigned)hash[1] << 8) % TLY__KEY_SETS;
	if (t->store->ops->data_version(t->store, &version, NULL) != TLY_OK)
		version = -1;
	t->seen_version = version;
	for (w = 0; version >= 0 && w < TLY__KEY_WAYS; w++)
		if (t->keys[set].way[w].used && t->keys[set].way[w].version == version &&
		    sodium_memcmp(t->keys[set].way[w].hash, hash, sizeof(hash)) == 0) {
			*a = t->keys[set].way[w].a;
			return TLY_OK;
		}
	rc = t->store->ops->key_lookup(t->store, hash, sizeof(hash), &k, err);
	if (rc == TLY_ENOTFOUND || (rc == TLY_OK && (k.revoked || k.role == TLY_ROLE_NONE)))
		return tly_err_set(err, TLY_EUNAUTH, "", "unknown or revoked API key");
	if (rc != TLY_OK)
		return rc;
	a->user_id = k.user_id;
	a->org_id = k.org_id;
	a->key_id = k.id;
	a->role = k.role;
	if (version >= 0) {
		/* an empty or outdated way first, else the next in turn */
		for (w = 0; w < TLY__KEY_WAYS; w++)
			if (!t->keys[set].way[w].used || t->keys[set].way[w].version != version)
				break;
		if (w == TLY__KEY_WAYS)
			w = t->keys[set].next++ % TLY__KEY_WAYS;
		memcpy(t->keys[set].way[w].hash, hash, sizeof(hash));
		t->keys[set].way[w].a = *a;
		t->keys[set].way[w].version = version;
		t->keys[set].way[w].used = 1;
	}
	return TLY_OK;
}

/* This connection's own key or membership writes do not move data_version. */
static void forget_keys(struct tly *t)
{
	memset(t->keys, 0, sizeof(t->keys));
}

enum tly_code tly_password_check(struct tly *t, const char *email, const char *password,
				 int64_t *user_id, struct tly_err *err)
{
	struct store_user u = { 0 };
	enum tly_code rc = t->store->ops->user_get(t->store, 0, email ? email : "", &u, err);

	if (rc == TLY_OK && (!u.password_hash || !password ||
			     crypto_pwhash_str_verify(u.password_hash, password, strlen(password)) != 0))
		rc = TLY_EUNAUTH;
	if (rc == TLY_ENOTFOUND || rc == TLY_EUNAUTH)
		rc = tly_err_set(err, TLY_EUNAUTH, "", "wrong email or password");
	if (rc == TLY_OK)
		*user_id = u.id;
	store_user_clear(&u);
	return rc;
}

enum tly_code tly_actor_admin(struct tly *t, const char *org, struct tly_actor *a,
			      struct tly_err *err)
{
	memset(a, 0, sizeof(*a));
	a->role = TLY_ROLE_OWNER;
	return tly_org_resolve(t, org, &a->org_id, err);
}

enum tly_code tly_me(struct tly *t, const struct tly_actor *a, json_t **out, struct tly_err *err)
{
	struct store_user u = { 0 };
	struct store_org o = { 0 };
	enum tly_code rc = t->store->ops->user_get(t->store, a->user_id, NULL, &u, err);

	if (rc == TLY_OK)
		rc = t->store->ops->org_get(t->store, a->org_id, NULL, &o, err);
	if (rc == TLY_OK)
		*out = json_pack("{s:{s:o,s:s},s:{s:o,s:s},s:s}",
				 "user", "id", tly__id(t, TLY_USER, u.id), "email", u.email,
				 "org", "id", tly__id(t, TLY_ORG, o.id), "name", o.name,
				 "role", tly_role_name(a->role));
	store_user_clear(&u);
	store_org_clear(&o);
	return rc;
}

int64_t tly_seen_version(const struct tly *t)
{
	return t->seen_version;
}
