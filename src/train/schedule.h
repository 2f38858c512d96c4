/* src/train/schedule.h — learning-rate schedule: linear warmup, then cosine
 * decay to min_lr over the remaining steps.
 *   step < warmup : lr * (step + 1) / warmup
 *   otherwise     : min_lr + (lr - min_lr) * 0.5 (1 + cos(pi * p)),
 *                   p = (step - warmup) / max(1, steps - warmup - 1)  in [0, 1]
 * step is 0-based; the last step reaches min_lr exactly. */
#ifndef LLMPI_SCHEDULE_H
#define LLMPI_SCHEDULE_H

float lr_at(int step, int steps, int warmup, float lr, float min_lr);

#endif
