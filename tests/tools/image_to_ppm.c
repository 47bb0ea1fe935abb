/* image_to_ppm.c — test tool: decodes images with fogpipe's decoder and
 * writes them as binary PPM (P6), so that a reference implementation without
 * an image decoder of its own (tests/facedet/faceapi_ref.js) sees exactly
 * the pixels fogpipe sees.
 *
 *   image_to_ppm IN OUT.ppm [IN OUT.ppm ...]
 */
#include <stdio.h>

#include "fogpipe/image.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc % 2 == 0) {
        fprintf(stderr, "usage: image_to_ppm IN OUT.ppm [IN OUT.ppm ...]\n");
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        fp_image im = {0};
        if (fp_image_load(argv[i], &im) || fp_image_save(&im, argv[i + 1])) {
            fprintf(stderr, "image_to_ppm: %s\n", fp_last_error());
            fp_image_free(&im);
            return 1;
        }
        fp_image_free(&im);
    }
    return 0;
}
