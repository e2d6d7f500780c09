/* The engine fuzzer's input, as two streams (fuzz_engine.c explains the
 * format): the script (actions, request bytes) and, after it, the choices
 * made along the way (how the filesystem answers, what simulated I/O
 * returns), each read in order. Keeping them apart means that changing a
 * choice does not shift the requests, and that a request does not eat
 * script bytes by asking for more choices. Both give zeros once used up:
 * every choice then takes its most ordinary value (answer at once, I/O
 * succeeds). */
#ifndef FURING_FUZZ_FE_INPUT_H
#define FURING_FUZZ_FE_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fe_input {
	const uint8_t *data;
	size_t script, script_end;  /* [script, script_end): what is left of the script */
	size_t choice, choice_end;  /* [choice, choice_end): what is left of the choices */
};

extern struct fe_input fe_in;

static inline bool fe_script_left(void)
{
	return fe_in.script < fe_in.script_end;
}

static inline uint8_t fe_script8(void)
{
	return fe_in.script < fe_in.script_end ? fe_in.data[fe_in.script++] : 0;
}

static inline uint16_t fe_script16(void)
{
	uint16_t lo = fe_script8();
	return (uint16_t)(lo | (uint16_t)fe_script8() << 8);
}

/* Up to @n bytes into @dst; returns how many there were. */
static inline size_t fe_script_bytes(void *dst, size_t n)
{
	size_t left = fe_in.script_end - fe_in.script;
	if (n > left)
		n = left;
	memcpy(dst, fe_in.data + fe_in.script, n);
	fe_in.script += n;
	return n;
}

static inline uint8_t fe_choice8(void)
{
	return fe_in.choice < fe_in.choice_end ? fe_in.data[fe_in.choice++] : 0;
}

static inline uint32_t fe_choice32(void)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)fe_choice8() << (8 * i);
	return v;
}

static inline uint64_t fe_choice64(void)
{
	uint64_t lo = fe_choice32();
	return lo | (uint64_t)fe_choice32() << 32;
}

/* A choice in [0, n). */
static inline unsigned int fe_pick(unsigned int n)
{
	return n <= 256 ? fe_choice8() % n : fe_choice32() % n;
}

#endif
