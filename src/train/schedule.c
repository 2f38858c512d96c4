/* src/train/schedule.c — warmup + cosine learning rate. */
#include <math.h>

#include "schedule.h"

float lr_at(int step, int steps, int warmup, float lr, float min_lr) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    int span = steps - warmup - 1;
    double p = span > 0 ? (double)(step - warmup) / span : 1.0;
    if (p > 1.0) p = 1.0;
    return (float)(min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(3.141592653589793 * p)));
}
