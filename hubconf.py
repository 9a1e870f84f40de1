"""torch.hub entry points: `torch.hub.load("OWNER/dcbench", "deepcluster_alexnet")`.

Each returns a `dcbench.Backbone`: `model(x)` gives the embedding (fc7 for AlexNet/VGG) or
the logits when a head exists; `model.forward_features(x)` the last conv map;
`model.forward_features(x, ["conv3", "conv5"])` named taps. `pretrained=False` builds the
same architecture with a random init and downloads nothing.
"""

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def _load(spec: str, pretrained: bool):
    import dcbench

    return dcbench.load_model(spec, pretrained=pretrained)


def deepcluster_alexnet(pretrained: bool = True):
    """Official DeepCluster AlexNet-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-alexnet", pretrained)


def deepcluster_vgg16(pretrained: bool = True):
    """Official DeepCluster VGG16-BN, Sobel, ImageNet, k-means k=10000 (ECCV 2018)."""
    return _load("deepcluster-vgg16", pretrained)


def random_alexnet_sobel(pretrained: bool = True):
    """Random-init AlexNet-BN with the Sobel front-end (the 'Random' baseline rows)."""
    return _load("random-alexnet-sobel", pretrained)


def load(spec: str, pretrained: bool = True):
    """Any dcbench model spec: catalog name, hub folder, file, hf-hub:, torchvision:, timm:."""
    return _load(spec, pretrained)
