/* Growing text: the report pages, the sweep's summaries, `${env:…}` substitutions and the
 * plugin scanner's answers are built in one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

void mfi_text_add(mfi_text *h, const char *text, size_t n)
{
    if (h->oom)
        return;
    if (h->len + n + 1 > h->cap) {
        size_t cap = (h->len + n + 1) * 2 + 4096;
        char *s = realloc(h->s, cap);
        if (!s) {
            h->oom = 1;
            return;
        }
        h->s = s;
        h->cap = cap;
    }
    memcpy(h->s + h->len, text, n);
    h->len += n;
    h->s[h->len] = '\0';
}

void mfi_text_puts(mfi_text *h, const char *text)
{
    mfi_text_add(h, text, strlen(text));
}

void mfi_text_printf(mfi_text *h, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        mfi_text_add(h, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        h->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mfi_text_add(h, big, (size_t)n);
    free(big);
}

char *mfi_text_take(mfi_text *t)
{
    if (t->oom) {
        free(t->s);
        return NULL;
    }
    return t->s ? t->s : calloc(1, 1);
}

char *mfi_text_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    mfi_text b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        mfi_text_add(&b, chunk, n);
    const int bad = ferror(f);
    fclose(f);
    if (bad)
        b.oom = 1; /* a read error: nothing rather than part of it */
    return mfi_text_take(&b);
}
