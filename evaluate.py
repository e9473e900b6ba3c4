"""Evaluate a trained model on one FER2013 split, `python evaluate.py --model M --data D --split S`,
or on a folder of images, one folder per class, `python evaluate.py --model M --data DIR [--split S]`.

See docs/training.md and docs/data.md (image folders). The work is in `keras_fer.evaluation`.
"""

import os

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides the results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from keras_fer.evaluation import main

    main()
