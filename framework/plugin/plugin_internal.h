/* Private to the plugin layer. */
#ifndef MF_PLUGIN_INTERNAL_H
#define MF_PLUGIN_INTERNAL_H
#include <stddef.h>

/* A vtable member is present when the vtable's declared size covers it and it is set:
 * how a newer host reads an older plugin's shorter vtable. */
#define MFI_HAS_MEMBER(ops, type, member)                                                   \
    ((ops)->struct_size >= offsetof(type, member) + sizeof((ops)->member) && (ops)->member)

#endif
