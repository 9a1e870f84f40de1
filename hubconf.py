"""torch.hub entry points for the dcbench catalog: `torch.hub.load(REPO, "deepcluster_alexnet")`.

Each function returns a `dcbench.models.Backbone` (use `.forward_features(x, ["conv5"])`).
"""

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def _load(name: str, **kwargs):
    import dcbench

    return dcbench.load_model(name, **kwargs)


def deepcluster_alexnet(**kwargs):
    """Official DeepCluster AlexNet-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-alexnet", **kwargs)


def deepcluster_vgg16(**kwargs):
    """Official DeepCluster VGG16-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-vgg16", **kwargs)


def random_alexnet_sobel(**kwargs):
    """Random-init AlexNet-BN with the Sobel front-end (the 'Random' baseline rows)."""
    return _load("random-alexnet-sobel", **kwargs)


def load(spec: str, **kwargs):
    """Any dcbench model spec: catalog name, hub folder, checkpoint file, hf-hub:, torchvision:."""
    return _load(spec, **kwargs)
