/* src/infer/conv_route.h — choosing the specialist in the router pattern.
 *
 * Two ways, tried in this order when a user message arrives:
 *  1. the router agent's reply: the specialist whose name appears first in
 *     it (whole word, any case; at the same place the longer name wins);
 *  2. keyword routes on the user's message: the specialist with the most
 *     distinct keywords found in it (substrings, any case), ties to the
 *     route listed first;
 * and when neither names anyone, the first specialist of the scenario.
 */
#ifndef LLMPI_CONV_ROUTE_H
#define LLMPI_CONV_ROUTE_H

#include "agents_config.h"

/* The specialist the reply names, as an agent index, or -1. */
int conv_route_named(const struct agents_config *cfg, const struct scenario_def *sc,
                     const char *reply);
/* The specialist the keyword routes pick for the message, or -1. */
int conv_route_keywords(const struct scenario_def *sc, const char *message);
/* 1, then 2, then the first specialist (reply may be NULL: no router). */
int conv_route_pick(const struct agents_config *cfg, const struct scenario_def *sc,
                    const char *reply, const char *message);

#endif
