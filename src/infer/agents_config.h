/* src/infer/agents_config.h — the agents file of `llmpi serve --agents`.
 *
 * Declares the agents the coordinator hosts (name, persona, prompt template,
 * sampling, topic subscriptions), optional replica weights for the load
 * balancer, and scenarios (a conversation pattern over some of the agents,
 * its opening line and its termination). JSON or YAML (libyaml): a .yaml or
 * .yml name is YAML, a .json name JSON, any other name JSON when its first
 * non-blank character is '{' and YAML otherwise.
 *
 * Everything is validated at load time so that a bad file fails before any
 * model is loaded: errors name the file and the JSON path of the offending
 * value ("agents.json: scenarios[1].routes.billing[0]: expected a string").
 * The schema is documented in docs/agents.md.
 */
#ifndef LLMPI_AGENTS_CONFIG_H
#define LLMPI_AGENTS_CONFIG_H

#include <stddef.h>

#include "sampler.h"
#include "stopstr.h"

#define AGENT_NAME_MAX 64
/* The template used when an agent gives none: the persona, the history one
 * message a line ("name: text"), the message to answer, then the agent's
 * name as the start of its own line. */
#define AGENT_DEFAULT_TEMPLATE "{persona}\n\n{history}{speaker}: {message}\n{agent}:"
/* The name user messages (the opening, messages posted from outside) carry;
 * no agent may take it. */
#define AGENT_USER "user"

struct agent_sampling {
    struct sampler_params p; /* temperature, top_k, top_p, repetition_penalty, seed */
    int max_tokens;          /* >= 1 (default 128) */
    int n_stop;              /* stop strings (default one: "\n") */
    char *stop[STOPSTR_MAX];
};

struct agent_def {
    char *name;
    char *persona;
    char *tmpl; /* the prompt template (AGENT_DEFAULT_TEMPLATE when absent) */
    struct agent_sampling sampling;
    char **subscribe; /* topics */
    int n_subscribe;
};

enum conv_pattern {
    CONV_TWO_AGENT,   /* agent 1 answers the opening, agent 2 answers agent 1, ... */
    CONV_ROUTER,      /* the router (or keyword routes) picks one specialist */
    CONV_ROUND_ROBIN, /* the agents speak in turn */
    CONV_BROADCAST,   /* a message to a topic: every subscriber answers it */
};
const char *conv_pattern_name(enum conv_pattern p);

struct scenario_route {
    int agent; /* index into agents_config.agents */
    char **keywords;
    int n_keywords;
};

struct scenario_def {
    char *name;
    enum conv_pattern pattern;
    int *agents; /* indices into agents_config.agents, in file order */
    int n_agents;
    int router; /* router pattern: the router agent's index, -1 for keyword routes only */
    struct scenario_route *routes;
    int n_routes;
    char *opening;      /* the first (user) message, NULL for none */
    int max_turns;      /* agent messages before the end, 0 = no limit */
    char *stop_phrase;  /* ends the conversation when a reply contains it, NULL = none */
    long token_budget;  /* generated tokens before the end, 0 = no limit */
    char *topic;        /* broadcast: the topic the messages go to */
    int history_window; /* most recent messages in {history}, 0 = all */
};

struct agents_config {
    char *path;
    struct agent_def *agents;
    int n_agents;
    double *replica_weights; /* NULL when the file has no replicas.weights */
    int n_replica_weights;
    struct scenario_def *scenarios;
    int n_scenarios;
};

/* Load and validate a file. -1 + err_set("FILE: PATH: what") on any error;
 * cfg is left empty (safe to free) then. */
int agents_config_load(const char *path, struct agents_config *cfg);

/* The same on text in memory; `name` stands for the file in messages, `yaml`
 * selects the YAML reader. */
int agents_config_parse(const char *text, size_t len, const char *name, int yaml,
                        struct agents_config *cfg);

void agents_config_free(struct agents_config *cfg);

/* The agent's index, or -1. */
int agents_config_agent(const struct agents_config *cfg, const char *name);
/* The scenario, or NULL + err_set naming the scenarios there are. */
const struct scenario_def *agents_config_scenario(const struct agents_config *cfg,
                                                  const char *name);

#endif
