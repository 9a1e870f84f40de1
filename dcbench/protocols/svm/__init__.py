"""The linear-SVM core shared by `voc07-svm` and `voc07-lowshot-svm` (Goyal et al. 2019)."""
