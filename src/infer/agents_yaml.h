/* src/infer/agents_yaml.h — a YAML document read into a cJSON tree.
 *
 * The agents file may be YAML; turning it into the same tree the JSON reader
 * produces lets one validator (agents_config.c) check both. Plain scalars
 * are typed the YAML 1.2 core way (null/~/empty, true/false, numbers);
 * quoted scalars are always strings. Mapping keys must be scalars; duplicate
 * keys are kept (the validator reports them with their path).
 */
#ifndef LLMPI_AGENTS_YAML_H
#define LLMPI_AGENTS_YAML_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The first document of `text`, or NULL + err_set("NAME:LINE:COL: YAML: ...")
 * on a syntax error, an empty stream, or nesting deeper than 64. */
cJSON *agents_yaml_parse(const char *text, size_t len, const char *name);

#endif
