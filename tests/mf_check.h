/* Shared by the check suites: run one suite, exit non-zero when any test failed. */
#ifndef MF_TESTS_CHECK_H
#define MF_TESTS_CHECK_H
#include <check.h>
#include <stdlib.h>

static inline int mf_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
