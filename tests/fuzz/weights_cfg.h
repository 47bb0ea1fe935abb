/* weights_cfg.h — the fixed cfg whose .weights files fpz_weights reads
 * (shared by targets.c and seedgen.c). */
/* Small, but with every kind of parameter block: a batch-normalised and a
 * plain convolution, a connected layer (transposed or not), a route. */
static const char fpz_weights_cfg[] =
    "[net]\nwidth=8\nheight=8\nchannels=3\n\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"
    "[maxpool]\nsize=2\nstride=2\n\n"
    "[convolutional]\nfilters=2\nsize=1\nstride=1\npad=0\nactivation=linear\n\n"
    "[route]\nlayers=-1,-2\n\n"
    "[connected]\noutput=3\nactivation=relu\n\n"
    "[softmax]\n";

