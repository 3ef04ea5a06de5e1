/* mmfuse/mmfuse.h — everything a plugin needs, in reading order:
 *   base.h    errors and shapes
 *   tensor.h  arena and random numbers
 *   graph.h   graphs, op constructors, gradient check
 *   nn.h      parameters, initialisers, modules, building blocks (linear, MLP)
 *   config.h  the typed, marked view of a YAML subtree; declared parameters
 *   data.h    dataset readers: modalities, labels, splits, batch buffers
 *   plugin.h  the plugin ABI: descriptor, kinds, vtables, MF_PLUGIN_DEFINE
 */
#ifndef MMFUSE_MMFUSE_H
#define MMFUSE_MMFUSE_H
#include "base.h"
#include "tensor.h"
#include "graph.h"
#include "nn.h"
#include "config.h"
#include "data.h"
#include "plugin.h"
#endif
