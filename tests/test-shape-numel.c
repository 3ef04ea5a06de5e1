/* mf_shape_numel is checked (issue 13 item 8): products that overflow, or pass 2^60 - 1,
 * and negative axes give -1 instead of a wrapped count. 111620x429509837x384773 wrapped to
 * 4 (an import wrote a nonsense file), (16, 2^60+1) to 16 (a layer too wide to exist was
 * accepted), (-2,-3) to 6. No check framework: the suite 'import' runs it. */
#include <stdio.h>
#include <stdlib.h>

#include <mmfuse/base.h>

static int failed;

static void expect(mf_shape s, int64_t want, const char *what)
{
    int64_t got = mf_shape_numel(&s);
    printf("%s %s: %lld\n", got == want ? "ok  " : "FAIL", what, (long long)got);
    failed += got != want;
}

int main(void)
{
    const int64_t cap = ((int64_t)1 << 60) - 1;
    expect(mf_shape3(111620, 429509837, 384773), -1, "111620x429509837x384773 overflows");
    expect(mf_shape2(16, ((int64_t)1 << 60) + 1), -1, "(16, 2^60+1) overflows");
    expect(mf_shape2(INT64_MAX, INT64_MAX), -1, "(INT64_MAX, INT64_MAX) overflows");
    expect(mf_shape2(-2, -3), -1, "a negative axis");
    expect(mf_shape2((int64_t)1 << 30, (int64_t)1 << 30), -1, "2^60 is over the cap");
    expect(mf_shape1(cap), cap, "2^60 - 1 is the largest count");
    expect(mf_shape3(1 << 20, 1 << 20, 1 << 19), (int64_t)1 << 59, "2^59");
    expect(mf_shape4(2, 3, 4, 5), 120, "(2,3,4,5)");
    expect(mf_shape2(0, 5), 0, "an empty axis");
    expect(mf_shape2(0, INT64_MAX), 0, "an empty axis before a huge one");
    expect((mf_shape){0, {0}}, 1, "a scalar");
    printf("%d failed\n", failed);
    return failed != 0;
}
