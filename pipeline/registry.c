/* The registry of input and sink types, built from pipeline/plugins.def so
 * that adding a type is one line there; messages list the types from it. */
#include <string.h>

#include "pipeline/internal.h"

#define SL_INPUT(n) extern const sl_input_ops sl_##n##_input_ops;
#define SL_SINK(n)  extern const sl_sink_ops sl_##n##_sink_ops;
#include "pipeline/plugins.def"
#undef SL_INPUT
#undef SL_SINK

#define SL_INPUT(n) &sl_##n##_input_ops,
#define SL_SINK(n)
static const sl_input_ops *const input_types[] = {
#include "pipeline/plugins.def"
};
#undef SL_INPUT
#undef SL_SINK

#define SL_INPUT(n)
#define SL_SINK(n) &sl_##n##_sink_ops,
static const sl_sink_ops *const sink_types[] = {
#include "pipeline/plugins.def"
};
#undef SL_INPUT
#undef SL_SINK

#define SL_INPUT(n) "|" #n
#define SL_SINK(n)
static const char input_choices[] =
#include "pipeline/plugins.def"
    ;
#undef SL_INPUT
#undef SL_SINK

#define SL_INPUT(n)
#define SL_SINK(n) "|" #n
static const char sink_choices[] =
#include "pipeline/plugins.def"
    ;
#undef SL_INPUT
#undef SL_SINK

const sl_input_ops *sl_registry_input(const char *type)
{
    for (size_t i = 0; type && i < sizeof input_types / sizeof *input_types; i++)
        if (strcmp(input_types[i]->type, type) == 0) return input_types[i];
    return NULL;
}

const sl_sink_ops *sl_registry_sink(const char *type)
{
    for (size_t i = 0; type && i < sizeof sink_types / sizeof *sink_types; i++)
        if (strcmp(sink_types[i]->type, type) == 0) return sink_types[i];
    return NULL;
}

const sl_input_ops *sl_pipeline_input_type(size_t i)
{
    return i < sizeof input_types / sizeof *input_types ? input_types[i] : NULL;
}

const sl_sink_ops *sl_pipeline_sink_type(size_t i)
{
    return i < sizeof sink_types / sizeof *sink_types ? sink_types[i] : NULL;
}

const char *sl_registry_choices(bool inputs)
{
    /* Past the leading '|'. */
    return inputs ? input_choices + 1 : sink_choices + 1;
}
