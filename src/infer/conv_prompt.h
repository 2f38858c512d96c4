/* src/infer/conv_prompt.h — prompt templates of the agents.
 *
 * A template is text with placeholders, replaced when a conversation asks an
 * agent to speak:
 *   {persona}      the agent's persona (system prompt)
 *   {agent}        the agent's name
 *   {history}      the conversation so far, one message a line ("speaker:
 *                  text\n"), without the message being answered (which
 *                  {speaker} and {message} give) and the router's replies
 *   {speaker}      who said the message being answered ("user" or an agent)
 *   {message}      the message being answered
 *   {specialists}  the scenario's agents (router: the specialists), ", "-separated
 * "{{" and "}}" stand for literal braces. Templates are checked when the
 * agents file loads, so rendering never meets an unknown placeholder.
 */
#ifndef LLMPI_CONV_PROMPT_H
#define LLMPI_CONV_PROMPT_H

#include <stddef.h>

struct conv_prompt_vars {
    const char *persona, *agent, *history, *speaker, *message, *specialists;
};

/* 0, or -1 + err_set("unknown placeholder {x}" / "unclosed '{' at offset N"). */
int conv_template_check(const char *tmpl);

/* The rendered prompt (malloc'd; NULL members render as ""), or NULL +
 * err_set on a bad template or out of memory. */
char *conv_template_render(const char *tmpl, const struct conv_prompt_vars *v);

/* A growable string. */
struct conv_buf {
    char *s;
    size_t len, cap;
};
int conv_buf_add(struct conv_buf *b, const char *s, size_t n); /* 0 / -1 + err_set */
int conv_buf_str(struct conv_buf *b, const char *s);
/* "who: text\n", with the text's newlines kept */
int conv_buf_line(struct conv_buf *b, const char *who, const char *text);

#endif
