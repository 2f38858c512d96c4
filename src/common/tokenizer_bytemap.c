/* src/common/tokenizer_bytemap.c — GPT-2's byte <-> unicode mapping. The
 * table is computed from the rule (not pasted) on first use; both directions
 * are plain array lookups afterwards. */
#include "tokenizer_bytemap.h"

static int stands_for_itself(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* byte -> code point, and code point (< 0x144) -> byte + 1 (0 = none). */
static uint32_t to_cp[256];
static int16_t from_cp[0x144];
static int ready;

static void build(void) {
    if (ready) return;
    uint32_t next = 0x100;
    for (unsigned b = 0; b < 256; b++) {
        to_cp[b] = stands_for_itself(b) ? b : next++;
        from_cp[to_cp[b]] = (int16_t)(b + 1);
    }
    ready = 1; /* idempotent: racing first calls write the same values */
}

uint32_t gpt2_byte_to_codepoint(unsigned char b) {
    build();
    return to_cp[b];
}

int gpt2_codepoint_to_byte(uint32_t cp) {
    build();
    return cp < 0x144 ? from_cp[cp] - 1 : -1;
}

size_t gpt2_bytes_to_text(const unsigned char *bytes, size_t len, char *out) {
    build();
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = to_cp[bytes[i]];
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

long gpt2_text_to_bytes(const char *text, size_t len, unsigned char *out) {
    build();
    const unsigned char *s = (const unsigned char *)text;
    long o = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        if (s[i] < 0x80) {
            cp = s[i++];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
            if (cp < 0x80) return -1; /* overlong */
            i += 2;
        } else {
            return -1; /* 3- and 4-byte sequences never stand for a byte */
        }
        int b = cp < 0x144 ? from_cp[cp] - 1 : -1;
        if (b < 0) return -1;
        out[o++] = (unsigned char)b;
    }
    return o;
}
