/* mmfuse sweep FILE [--jobs N] (being written) */
#include "cli.h"
