/* src/common/tokenizer_bytemap.h — GPT-2's byte <-> unicode mapping and the
 * small UTF-8 helpers around it.
 *
 * GPT-2 writes every token of vocab.json / merges.txt as text: each byte
 * becomes one printable code point (bytes '!'..'~', 0xA1..0xAC and
 * 0xAE..0xFF stand for themselves; the other 68 bytes map to U+0100..U+0143
 * in byte order), so a space is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A).
 */
#ifndef LLMPI_TOKENIZER_BYTEMAP_H
#define LLMPI_TOKENIZER_BYTEMAP_H

#include <stddef.h>
#include <stdint.h>

/* The code point that stands for byte b. */
uint32_t gpt2_byte_to_codepoint(unsigned char b);
/* The byte a code point stands for, or -1 if it stands for none. */
int gpt2_codepoint_to_byte(uint32_t cp);

/* The GPT-2 text of bytes[0..len): writes at most 2 * len bytes to out
 * (every mapped code point takes 1 or 2 UTF-8 bytes) and returns the length. */
size_t gpt2_bytes_to_text(const unsigned char *bytes, size_t len, char *out);
/* The bytes a GPT-2 text stands for, written to out (at most len bytes).
 * Returns the number of bytes, or -1 when the text is not valid UTF-8 or holds
 * a code point that stands for no byte (e.g. an added token such as "[CLS]"
 * written with characters outside the mapping). */
long gpt2_text_to_bytes(const char *text, size_t len, unsigned char *out);

#endif
