/* mmfuse sweep: see include/mmfuse/host.h (being written) */
#include <mmfuse/host.h>
