/* tests/test_agents_config.c — the agents file (src/infer/agents_config.*).
 *
 * The shipped jobs/agents_scenarios.json must load with the scenarios the
 * docs promise; the same small config written as JSON and as YAML must load
 * to the same values; and every validation rule gets one small bad file
 * (written into a temporary directory) whose error must name the file, the
 * JSON path and the problem.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents_config.h"
#include "conv_prompt.h"
#include "err.h"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/llmpi_test_agents_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(agents_config, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

Test(agents_config, shipped_scenarios) {
    struct agents_config c;
    cr_assert_eq(agents_config_load(AGENTS_FILE, &c), 0, "%s", err_msg());
    const struct scenario_def *cs = agents_config_scenario(&c, "customer-service");
    const struct scenario_def *npc = agents_config_scenario(&c, "game-npcs");
    const struct scenario_def *as = agents_config_scenario(&c, "assistant");
    cr_assert(cs && npc && as, "%s", err_msg());
    cr_expect_eq(cs->pattern, CONV_ROUTER);
    cr_assert_geq(cs->router, 0);
    cr_expect_str_eq(c.agents[cs->router].name, "dispatcher");
    cr_expect_eq(cs->n_agents, 3);
    const char *spec[] = {"billing", "technical", "escalation"};
    for (int i = 0; i < 3; i++) {
        cr_expect_str_eq(c.agents[cs->agents[i]].name, spec[i]);
        cr_expect_str_eq(c.agents[cs->routes[i].agent].name, spec[i]);
        cr_expect_gt(cs->routes[i].n_keywords, 0);
    }
    cr_expect_eq(npc->pattern, CONV_ROUND_ROBIN);
    cr_expect_geq(npc->n_agents, 2);
    cr_expect_eq(as->pattern, CONV_BROADCAST);
    cr_expect_str_eq(as->topic, "questions");
    cr_expect_eq(c.n_replica_weights, 2);
    for (int i = 0; i < c.n_agents; i++) { /* personas and sampling are in range */
        cr_expect_gt(strlen(c.agents[i].persona), 20, "%s", c.agents[i].name);
        cr_expect_eq(sampler_params_check(&c.agents[i].sampling.p), 0, "%s", err_msg());
    }
    const struct agent_def *d = &c.agents[cs->router];
    cr_expect_eq(d->sampling.p.temperature, 0.0f);
    cr_expect_eq(d->sampling.n_stop, 2);
    cr_expect_null(agents_config_scenario(&c, "nope"));
    cr_expect(strstr(err_msg(), "no scenario named 'nope'") &&
                  strstr(err_msg(), "game-npcs"),
              "%s", err_msg());
    agents_config_free(&c);
}

#define AGENTS2                                                                          \
    "\"agents\": [{\"name\": \"a\", \"persona\": \"P-a\"}, {\"name\": \"b\", "           \
    "\"persona\": "                                                                      \
    "\"P-b\"}]"

static const char *json_small =
    "{\"agents\": [\n"
    "  {\"name\": \"a\", \"persona\": \"Persona A\", \"template\": "
    "\"{persona}|{message}|{agent}:\",\n"
    "   \"sampling\": {\"temperature\": 0.5, \"top_k\": 40, \"top_p\": 0.9, "
    "\"repetition_penalty\": 1.2,\n"
    "                \"max_tokens\": 32, \"seed\": 7, \"stop\": [\"END\", \"\\n\\n\"]},\n"
    "   \"subscribe\": [\"news\"]},\n"
    "  {\"name\": \"b\", \"persona\": \"Persona B\", \"subscribe\": [\"news\", "
    "\"sport\"]}],\n"
    " \"replicas\": {\"weights\": [2, 1.5]},\n"
    " \"scenarios\": [\n"
    "  {\"name\": \"chat\", \"pattern\": \"two-agent\", \"agents\": [\"a\", \"b\"], "
    "\"opening\": \"hi\",\n"
    "   \"max_turns\": 4, \"stop_phrase\": \"bye\", \"token_budget\": 100, "
    "\"history_window\": 3},\n"
    "  {\"name\": \"desk\", \"pattern\": \"router\", \"agents\": [\"b\"], \"router\": "
    "\"a\",\n"
    "   \"routes\": {\"b\": [\"x\", \"y\"]}, \"max_turns\": 2},\n"
    "  {\"name\": \"all\", \"pattern\": \"broadcast\", \"topic\": \"news\", "
    "\"token_budget\": 50}]}\n";

static const char *yaml_small =
    "# the same as json_small\n"
    "agents:\n"
    "  - name: a\n"
    "    persona: Persona A\n"
    "    template: \"{persona}|{message}|{agent}:\"\n"
    "    sampling: {temperature: 0.5, top_k: 40, top_p: 0.9, repetition_penalty: 1.2,\n"
    "               max_tokens: 32, seed: 7, stop: [\"END\", \"\\n\\n\"]}\n"
    "    subscribe: [news]\n"
    "  - name: b\n"
    "    persona: Persona B\n"
    "    subscribe: [news, sport]\n"
    "replicas:\n"
    "  weights: [2, 1.5]\n"
    "scenarios:\n"
    "  - name: chat\n"
    "    pattern: two-agent\n"
    "    agents: [a, b]\n"
    "    opening: hi\n"
    "    max_turns: 4\n"
    "    stop_phrase: bye\n"
    "    token_budget: 100\n"
    "    history_window: 3\n"
    "  - {name: desk, pattern: router, agents: [b], router: a, routes: {b: [x, y]}, "
    "max_turns: 2}\n"
    "  - name: all\n"
    "    pattern: broadcast\n"
    "    topic: news\n"
    "    token_budget: 50\n";

static void check_small(const struct agents_config *c) {
    cr_assert_eq(c->n_agents, 2);
    const struct agent_def *a = &c->agents[0], *b = &c->agents[1];
    cr_expect_str_eq(a->name, "a");
    cr_expect_str_eq(a->persona, "Persona A");
    cr_expect_str_eq(a->tmpl, "{persona}|{message}|{agent}:");
    cr_expect_float_eq(a->sampling.p.temperature, 0.5f, 1e-7);
    cr_expect_eq(a->sampling.p.top_k, 40);
    cr_expect_float_eq(a->sampling.p.top_p, 0.9f, 1e-7);
    cr_expect_float_eq(a->sampling.p.repetition_penalty, 1.2f, 1e-7);
    cr_expect_eq(a->sampling.max_tokens, 32);
    cr_expect_eq(a->sampling.p.seed, 7);
    cr_assert_eq(a->sampling.n_stop, 2);
    cr_expect_str_eq(a->sampling.stop[0], "END");
    cr_expect_str_eq(a->sampling.stop[1], "\n\n");
    cr_expect_eq(a->n_subscribe, 1);
    /* defaults */
    cr_expect_str_eq(b->tmpl, AGENT_DEFAULT_TEMPLATE);
    cr_expect_float_eq(b->sampling.p.temperature, 1.0f, 0);
    cr_expect_eq(b->sampling.max_tokens, 128);
    cr_assert_eq(b->sampling.n_stop, 1);
    cr_expect_str_eq(b->sampling.stop[0], "\n");
    cr_expect_eq(b->n_subscribe, 2);
    cr_assert_eq(c->n_replica_weights, 2);
    cr_expect_float_eq(c->replica_weights[1], 1.5, 0);
    cr_assert_eq(c->n_scenarios, 3);
    const struct scenario_def *s = &c->scenarios[0];
    cr_expect_eq(s->pattern, CONV_TWO_AGENT);
    cr_expect_eq(s->n_agents, 2);
    cr_expect_eq(s->agents[1], 1);
    cr_expect_str_eq(s->opening, "hi");
    cr_expect_eq(s->max_turns, 4);
    cr_expect_str_eq(s->stop_phrase, "bye");
    cr_expect_eq(s->token_budget, 100);
    cr_expect_eq(s->history_window, 3);
    cr_expect_eq(s->router, -1);
    s = &c->scenarios[1];
    cr_expect_eq(s->pattern, CONV_ROUTER);
    cr_expect_eq(s->router, 0);
    cr_assert_eq(s->n_routes, 1);
    cr_expect_eq(s->routes[0].agent, 1);
    cr_expect_eq(s->routes[0].n_keywords, 2);
    s = &c->scenarios[2]; /* no agents list: every subscriber of the topic */
    cr_expect_eq(s->pattern, CONV_BROADCAST);
    cr_expect_eq(s->n_agents, 2);
    cr_expect_null(s->opening);
}

Test(agents_config, json_and_yaml_agree) {
    struct agents_config c;
    cr_assert_eq(agents_config_load(write_file("small.json", json_small), &c), 0, "%s",
                 err_msg());
    check_small(&c);
    agents_config_free(&c);
    cr_assert_eq(agents_config_load(write_file("small.yaml", yaml_small), &c), 0, "%s",
                 err_msg());
    check_small(&c);
    agents_config_free(&c);
    /* no telling extension: sniffed ('{' = JSON) */
    cr_assert_eq(agents_config_load(write_file("small.conf", yaml_small), &c), 0, "%s",
                 err_msg());
    check_small(&c);
    agents_config_free(&c);
    cr_assert_eq(agents_config_load(write_file("small.cfg", json_small), &c), 0, "%s",
                 err_msg());
    check_small(&c);
    agents_config_free(&c);
}

Test(agents_config, yaml_typing) {
    /* quoted numbers stay strings: the validator reports the type */
    struct agents_config c;
    const char *p =
        write_file("t.yml", "agents:\n  - name: a\n    persona: x\n    sampling:\n"
                            "      max_tokens: \"12\"\n");
    cr_assert_eq(agents_config_load(p, &c), -1);
    cr_expect(strstr(err_msg(),
                     "agents[0].sampling.max_tokens: expected a number, got a string"),
              "%s", err_msg());
    p = write_file("t2.yml", "agents:\n  - name: a\n    persona: ~\n");
    cr_assert_eq(agents_config_load(p, &c), -1);
    cr_expect(strstr(err_msg(), "agents[0].persona: expected a string, got null"), "%s",
              err_msg());
    p = write_file("t3.yml", "agents:\n  - name: 12\n    persona: yes\n");
    cr_assert_eq(agents_config_load(p, &c), -1);
    cr_expect(strstr(err_msg(), "agents[0].name: expected a string, got a number"), "%s",
              err_msg());
    /* a self-referencing alias is refused, not followed forever */
    p = write_file("t4.yml", "agents: &x [*x]\n");
    cr_assert_eq(agents_config_load(p, &c), -1);
}

struct bad {
    const char *what, *file, *text, *expect;
};

/* One rule each. The error must contain the file name and `expect`. */
static const struct bad bad_files[] = {
    {"json syntax", "syntax.json", "{\"agents\": [\n  {\"name\": \"a\",, }]}",
     "syntax.json:2:"},
    {"json trailing text", "trail.json", "{\"agents\": []}\n}",
     "trail.json:2:1: JSON syntax error: text after"},
    {"yaml syntax", "syntax.yaml", "agents:\n  - name: a\n   persona: [\n",
     "syntax.yaml:"},
    {"not an object", "arr.json", "[1, 2]",
     "(top level): expected an object, got an array"},
    {"no agents", "none.json", "{\"scenarios\": []}", "agents: required"},
    {"empty agents", "empty.json", "{\"agents\": []}", "agents: must not be empty"},
    {"unknown top field", "top.json", "{" AGENTS2 ", \"scenarioz\": []}",
     "(top level): unknown field 'scenarioz'"},
    {"unknown agent field", "af.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", "
     "\"persna\": \"q\"}]}",
     "agents[0]: unknown field 'persna' (known: name, persona, template, sampling, "
     "subscribe)"},
    {"unknown sampling field", "sf.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"temprature\": "
     "1}}]}",
     "agents[0].sampling: unknown field 'temprature'"},
    {"field twice", "twice.json",
     "{\"agents\": [{\"name\": \"a\", \"name\": \"b\", \"persona\": \"p\"}]}",
     "agents[0]: field 'name' appears twice"},
    {"missing persona", "mp.json", "{\"agents\": [{\"name\": \"a\"}]}",
     "agents[0].persona: required"},
    {"name type", "nt.json", "{\"agents\": [{\"name\": 3, \"persona\": \"p\"}]}",
     "agents[0].name: expected a string, got a number"},
    {"sampling type", "st.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": 1}]}",
     "agents[0].sampling: expected an object, got a number"},
    {"temperature type", "tt.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": "
     "{\"temperature\": \"hot\"}}]}",
     "agents[0].sampling.temperature: expected a number, got a string"},
    {"subscribe type", "sub.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"subscribe\": \"news\"}]}",
     "agents[0].subscribe: expected an array of strings, got a string"},
    {"bad name", "bn.json", "{\"agents\": [{\"name\": \"a b\", \"persona\": \"p\"}]}",
     "agents[0].name: 'a b': use letters, digits"},
    {"reserved name", "rn.json",
     "{\"agents\": [{\"name\": \"user\", \"persona\": \"p\"}]}",
     "agents[0].name: 'user' is reserved"},
    {"duplicate agent", "da.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\"}, "
     "{\"name\": \"a\", \"persona\": \"q\"}]}",
     "agents[1].name: duplicate agent name 'a' (also agents[0])"},
    {"template placeholder", "tp.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"template\": \"{persona} "
     "{mesage}\"}]}",
     "agents[0].template: unknown placeholder {mesage}"},
    {"template unclosed", "tu.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"template\": \"{persona} "
     "{message\"}]}",
     "agents[0].template: unclosed '{' at offset 10"},
    {"temperature < 0", "t0.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": "
     "{\"temperature\": -0.5}}]}",
     "agents[0].sampling.temperature: must be >= 0"},
    {"top_p > 1", "tp1.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"top_p\": "
     "1.5}}]}",
     "agents[0].sampling.top_p: must be in (0, 1]"},
    {"top_k fraction", "tk.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"top_k\": "
     "2.5}}]}",
     "agents[0].sampling.top_k: expected an integer, got 2.5"},
    {"top_k < 0", "tkn.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"top_k\": "
     "-1}}]}",
     "agents[0].sampling.top_k: must be in [0, 1000000000]"},
    {"repetition penalty 0", "rp.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": "
     "{\"repetition_penalty\": 0}}]}",
     "agents[0].sampling.repetition_penalty: must be > 0"},
    {"max_tokens 0", "mt.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"max_tokens\": "
     "0}}]}",
     "agents[0].sampling.max_tokens: must be in [1, 1000000]"},
    {"seed < 0", "sd.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"seed\": "
     "-3}}]}",
     "agents[0].sampling.seed: must be in [0, 9007199254740992]"},
    {"empty stop", "es.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"stop\": "
     "[\"x\", \"\"]}}]}",
     "agents[0].sampling.stop[1]: must not be empty"},
    {"too many stops", "ms.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"sampling\": {\"stop\": "
     "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}}]}",
     "agents[0].sampling.stop: at most 8 entries"},
    {"replica weight", "rw.json", "{" AGENTS2 ", \"replicas\": {\"weights\": [1, -2]}}",
     "replicas.weights[1]: must be > 0"},
    {"replicas field", "rf.json", "{" AGENTS2 ", \"replicas\": {\"count\": 2}}",
     "replicas: unknown field 'count'"},
    {"scenario field", "sc.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"b\"], \"opening\": \"x\", "
     "\"max_turns\": 2, \"turns\": 3}]}",
     "scenarios[0]: unknown field 'turns'"},
    {"unknown pattern", "up.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"star\", \"agents\": [\"a\", \"b\"], \"max_turns\": 2}]}",
     "scenarios[0].pattern: unknown pattern 'star'"},
    {"missing agent", "ma.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"ghost\"], \"opening\": \"x\", "
     "\"max_turns\": 2}]}",
     "scenarios[0].agents[1]: no agent named 'ghost'"},
    {"agent listed twice", "a2.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"a\"], \"opening\": \"x\", "
     "\"max_turns\": 2}]}",
     "scenarios[0].agents[1]: 'a' is listed twice"},
    {"missing router", "mr.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"router\", \"agents\": [\"b\"], \"router\": \"boss\", "
     "\"max_turns\": 2}]}",
     "scenarios[0].router: no agent named 'boss'"},
    {"route to missing agent", "rm.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"router\", \"agents\": [\"b\"], "
     "\"routes\": {\"b\": [\"x\"], \"ghost\": [\"y\"]}, \"max_turns\": 2}]}",
     "scenarios[0].routes.ghost: no agent named 'ghost'"},
    {"route outside the scenario", "ro.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"router\", \"agents\": [\"b\"], "
     "\"routes\": {\"a\": [\"x\"]}, \"max_turns\": 2}]}",
     "scenarios[0].routes.a: 'a' is not one of this scenario's agents"},
    {"route keywords type", "rk.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"router\", \"agents\": [\"b\"], "
     "\"routes\": {\"b\": [\"x\", 4]}, \"max_turns\": 2}]}",
     "scenarios[0].routes.b[1]: expected a string, got a number"},
    {"router without routes", "rr.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"router\", \"agents\": [\"b\"], "
     "\"max_turns\": 2}]}",
     "scenarios[0]: the router pattern needs a router agent or routes"},
    {"router is a specialist", "rs.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"router\", \"agents\": [\"a\", "
     "\"b\"], \"router\": \"a\", \"max_turns\": 2}]}",
     "scenarios[0].router: the router 'a' is also listed as a specialist"},
    {"routes outside router", "ror.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"round-robin\", "
                 "\"agents\": [\"a\", "
     "\"b\"], \"opening\": \"x\", \"routes\": {\"a\": [\"k\"]}, \"max_turns\": 2}]}",
     "scenarios[0].routes: only the router pattern has routes (this is round-robin)"},
    {"two-agent with one", "t1.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\"], \"opening\": \"x\", "
     "\"max_turns\": 2}]}",
     "scenarios[0].agents: two-agent needs exactly 2 agents"},
    {"no opening", "no.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"round-robin\", \"agents\": [\"a\", \"b\"], \"max_turns\": 2}]}",
     "scenarios[0].opening: required for the round-robin pattern"},
    {"no termination", "nt2.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"chat\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"b\"], \"opening\": \"x\"}]}",
     "scenarios[0]: scenario 'chat' is a cycle with no termination: set max_turns, "
     "stop_phrase "
     "or token_budget"},
    {"max_turns 0", "m0.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"b\"], \"opening\": \"x\", "
     "\"max_turns\": 0}]}",
     "scenarios[0].max_turns: must be in [1, 1000000000]"},
    {"empty stop phrase", "ep.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"two-agent\", \"agents\": [\"a\", \"b\"], \"opening\": \"x\", "
     "\"stop_phrase\": \"\"}]}",
     "scenarios[0].stop_phrase: must not be empty"},
    {"broadcast without topic", "bt.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"broadcast\", "
                 "\"max_turns\": 2}]}",
     "scenarios[0].topic: required for the broadcast pattern"},
    {"broadcast nobody subscribed", "bn2.json",
     "{" AGENTS2
     ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"broadcast\", \"topic\": \"t\", "
     "\"max_turns\": 2}]}",
     "scenarios[0].topic: no agent subscribes to 't'"},
    {"broadcast agent not subscribed", "bs.json",
     "{\"agents\": [{\"name\": \"a\", \"persona\": \"p\", \"subscribe\": [\"t\"]}, "
     "{\"name\": \"b\", "
     "\"persona\": \"q\"}], \"scenarios\": [{\"name\": \"s\", \"pattern\": "
     "\"broadcast\", "
     "\"topic\": \"t\", \"agents\": [\"a\", \"b\"], \"max_turns\": 2}]}",
     "scenarios[0].agents[1]: agent 'b' does not subscribe to topic 't'"},
    {"topic outside broadcast", "tob.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"two-agent\", "
                 "\"agents\": [\"a\", "
     "\"b\"], \"opening\": \"x\", \"topic\": \"t\", \"max_turns\": 2}]}",
     "scenarios[0].topic: only the broadcast pattern has a topic (this is two-agent)"},
    {"duplicate scenario", "ds.json",
     "{" AGENTS2 ", \"scenarios\": [{\"name\": \"s\", \"pattern\": \"two-agent\", "
                 "\"agents\": [\"a\", "
     "\"b\"], \"opening\": \"x\", \"max_turns\": 2}, {\"name\": \"s\", \"pattern\": "
     "\"round-robin\", "
     "\"agents\": [\"a\", \"b\"], \"opening\": \"y\", \"max_turns\": 3}]}",
     "scenarios[1].name: duplicate scenario name 's' (also scenarios[0])"},
    {"yaml duplicate key", "dup.yaml",
     "agents:\n  - name: a\n    persona: p\n    persona: q\n",
     "agents[0]: field 'persona' appears twice"},
};

Test(agents_config, every_validation_error) {
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        const struct bad *b = &bad_files[i];
        struct agents_config c;
        const char *path = write_file(b->file, b->text);
        int rc = agents_config_load(path, &c);
        cr_expect_eq(rc, -1, "%s: loaded", b->what);
        if (rc) {
            cr_expect(strstr(err_msg(), path) == err_msg(),
                      "%s: the message starts with the file: %s", b->what, err_msg());
            cr_expect(strstr(err_msg(), b->expect) != NULL, "%s: '%s' lacks '%s'",
                      b->what, err_msg(), b->expect);
            cr_expect_null(c.agents, "%s: cfg not emptied", b->what);
        } else
            agents_config_free(&c);
    }
}

Test(agents_config, missing_file) {
    struct agents_config c;
    cr_assert_eq(agents_config_load("/no/such/agents.json", &c), -1);
    cr_expect(strstr(err_msg(), "/no/such/agents.json: cannot open"), "%s", err_msg());
}

Test(agents_config, template_render) {
    struct conv_prompt_vars v = {"P", "bob", "user: hi\n", "user", "hi", "x, y"};
    char *s = conv_template_render(
        "{persona}|{agent}|{history}|{speaker}|{message}|{specialists}|"
        "{{literal}}|}",
        &v);
    cr_assert_not_null(s, "%s", err_msg());
    cr_expect_str_eq(s, "P|bob|user: hi\n|user|hi|x, y|{literal}|}");
    free(s);
    cr_expect_eq(conv_template_check("a {{b}} {agent}"), 0);
    cr_expect_eq(conv_template_check("{nope}"), -1);
}
