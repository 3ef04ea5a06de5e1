/* placeholder: filled by issue 3 */
#include "core_internal.h"
