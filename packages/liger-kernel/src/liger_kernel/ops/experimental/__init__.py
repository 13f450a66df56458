"""liger-kernel 0.8.5's experimental ops: the embedding lookup and the
int8 x 2-bit matmul."""
