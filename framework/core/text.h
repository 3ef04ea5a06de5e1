/* Growing text (private): appended to, never shortened; an allocation failure sets oom and
 * makes every later call a no-op, so callers check once at the end. */
#ifndef MF_CORE_TEXT_H
#define MF_CORE_TEXT_H

#include <stddef.h>

#include <mmfuse/base.h>

typedef struct mfi_text {
    char *s; /* NUL-terminated, NULL while empty */
    size_t len, cap;
    int oom;
} mfi_text;

void mfi_text_add(mfi_text *t, const char *text, size_t n);
void mfi_text_puts(mfi_text *t, const char *text);
void mfi_text_printf(mfi_text *t, const char *fmt, ...) MF_PRINTF(2, 3);
/* The string (never NULL unless out of memory, when the text is freed); the caller owns it. */
char *mfi_text_take(mfi_text *t);
/* A whole file as a string; NULL when it cannot be read. */
char *mfi_text_read_file(const char *path);

#endif
