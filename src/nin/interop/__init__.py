"""Import of the published NIN weights: Caffe Model Zoo ``.caffemodel`` files and ModelHub's MXNet files.

Everything here reads the original formats byte by byte (no caffe, mxnet or protobuf at run time) and
produces an ordinary nin checkpoint, so ``nin eval``, ``Predictor`` and ``nin serve`` work on imported
weights exactly as on trained ones. Entry points: :func:`nin.interop.importer.import_caffe` and
:func:`nin.interop.importer.import_mxnet`.
"""
