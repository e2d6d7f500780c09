/* QEMU's rbd: syntax (export/rbd_spec.c): the path's forms, the options,
 * backslash escapes, and a one-line refusal for each malformed source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../export/rbd_spec.h"

static char err[512];

static void pool_and_image(void **state)
{
	struct rbd_spec s;

	assert_int_equal(rbd_spec_parse("rbd:rbd/disk", &s, err, sizeof(err)), 0);
	assert_string_equal(s.pool, "rbd");
	assert_string_equal(s.image, "disk");
	assert_null(s.nspace);
	assert_null(s.snap);
	assert_null(s.conf);
	assert_null(s.id);
	assert_null(s.keyring);
	assert_int_equal(s.nopts, 0);
	rbd_spec_free(&s);
}

static void namespace_snapshot_and_options(void **state)
{
	struct rbd_spec s;

	assert_int_equal(rbd_spec_parse("rbd:p/ns/img@snap1:conf=/etc/c.conf:id=furing:keyring=/k:mon_host=127.0.0.1",
					&s, err, sizeof(err)),
			 0);
	assert_string_equal(s.pool, "p");
	assert_string_equal(s.nspace, "ns");
	assert_string_equal(s.image, "img");
	assert_string_equal(s.snap, "snap1");
	assert_string_equal(s.conf, "/etc/c.conf");
	assert_string_equal(s.id, "furing");
	assert_string_equal(s.keyring, "/k");
	assert_int_equal(s.nopts, 1);
	assert_string_equal(s.opt_key[0], "mon_host");
	assert_string_equal(s.opt_val[0], "127.0.0.1");
	rbd_spec_free(&s);
}

static void escapes(void **state)
{
	struct rbd_spec s;

	/* QEMU's: a colon in a value (a monitor address with its port), and
	 * escaped separators in names. */
	assert_int_equal(rbd_spec_parse("rbd:p/a\\@b\\/c@s\\:1:mon_host=127.0.0.1\\:6789:x=a\\=b\\\\", &s, err,
					sizeof(err)),
			 0);
	assert_string_equal(s.pool, "p");
	assert_string_equal(s.image, "a@b/c");
	assert_string_equal(s.snap, "s:1");
	assert_int_equal(s.nopts, 2);
	assert_string_equal(s.opt_val[0], "127.0.0.1:6789");
	assert_string_equal(s.opt_key[1], "x");
	assert_string_equal(s.opt_val[1], "a=b\\");
	rbd_spec_free(&s);
}

static void refused(const char *source, const char *why)
{
	struct rbd_spec s;

	err[0] = 0;
	assert_int_equal(rbd_spec_parse(source, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, why));
	assert_null(strchr(err, '\n'));
	assert_null(s.buf);
}

static void malformed(void **state)
{
	refused("nbd://x", "does not start with rbd:");
	refused("rbd:", "no image name");
	refused("rbd:pool", "no image name");
	refused("rbd:/img", "pool name is empty");
	refused("rbd:pool/", "image name is empty");
	refused("rbd:pool//img", "namespace is empty");
	refused("rbd:a/b/c/d", "too many '/'");
	refused("rbd:p/i@", "snapshot name after '@' is empty");
	refused("rbd:p/i:conf", "option 'conf' is not KEY=VALUE");
	refused("rbd:p/i:=x", "is not KEY=VALUE");
	refused("rbd:p/i\\", "lone backslash");
	refused("rbd:p/i:a=1:b=2:c=3:d=4:e=5:f=6:g=7:h=8:i=9:j=10:k=11:l=12:m=13:n=14:o=15:p=16:q=17",
		"more than 16 options");
}

static void recognised(void **state)
{
	assert_true(rbd_spec_is_rbd("rbd:p/i"));
	assert_false(rbd_spec_is_rbd("/dev/rbd0"));
	assert_false(rbd_spec_is_rbd("rbd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pool_and_image),
		cmocka_unit_test(namespace_snapshot_and_options),
		cmocka_unit_test(escapes),
		cmocka_unit_test(malformed),
		cmocka_unit_test(recognised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
