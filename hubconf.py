"""torch.hub entry points for the dcbench catalog: `torch.hub.load(REPO, "deepcluster_alexnet")`.

Each function returns a `dcbench.models.Backbone` (use `.forward_features(x, ["conv5"])`).
"""

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def _load(spec: str):
    import dcbench

    return dcbench.load_model(spec)


def deepcluster_alexnet():
    """Official DeepCluster AlexNet-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-alexnet")


def deepcluster_vgg16():
    """Official DeepCluster VGG16-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-vgg16")


def random_alexnet_sobel():
    """Random-init AlexNet-BN with the Sobel front-end (the 'Random' baseline rows)."""
    return _load("random-alexnet-sobel")


def load(spec: str):
    """Any dcbench model spec: catalog name, hub folder, checkpoint file, hf-hub:, torchvision:."""
    return _load(spec)
