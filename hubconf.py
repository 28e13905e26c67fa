"""torch.hub entry points, as other model repositories have them:

    torch.hub.load("path/to/alexnet", "cifar10_conv_local", source="local")   # a clone
    torch.hub.load("path/to/alexnet", "alexnet_paper", source="local", num_classes=10)
    torch.hub.load("path/to/alexnet", "alexnet_torchvision", source="local", pretrained=True)

Each returns a torch.nn.Module built by the package's own registry and loaders (`src/alexnet`).
A model with weights also carries `.classes`, `.preprocessing` and `.transform`, which turns
an image (a file, a PIL image, a uint8 array) into the input the model was trained on, as
`alexnet predict` does (centre view):

    probs = model(model.transform("cat.png")[None]).softmax(1)
"""

import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors"]

# torch.hub imports this file from the repository root: the package lives in src/.
_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


def alexnet_paper(pretrained=False, **options):
    """The paper's two-tower AlexNet (Fig. 2), untrained. Options as for
    `alexnet.models.build_model("alexnet-paper", ...)`: num_classes, lrn, towers, dropout, ..."""
    from alexnet.models import build_model

    if pretrained:
        raise ValueError("no trained weights are published for alexnet-paper; train it with "
                         "`alexnet train --recipe imagenet-paper --data IMAGENET`")
    return build_model("alexnet-paper", **options)


def alexnet_torchvision(pretrained=False, **options):
    """torchvision's single-tower AlexNet (its state dicts load with strict=True).
    pretrained=True: torchvision's published ImageNet weights (IMAGENET1K_V1), downloaded
    once into torch hub's cache, in eval mode, with torchvision's preprocessing (shorter side
    256, centre 224, ImageNet mean and std) as `.transform` and its 1000 `.classes`."""
    from alexnet.models import build_model

    if not pretrained:
        return build_model("alexnet-torchvision", **options)
    if options:
        raise ValueError(f"the pretrained weights fix the network; options {sorted(options)} "
                         f"cannot be changed")
    from alexnet.data.normalization import imagenet_preprocessing
    from alexnet.interop.torchvision import (
        download_torchvision_weights,
        imagenet_categories,
        model_from_state_dict,
        read_state_dict,
    )

    path = download_torchvision_weights(hub=True)
    model = model_from_state_dict(read_state_dict(path), str(path)).eval()
    return _with_preprocessing(model, imagenet_categories(), imagenet_preprocessing(256, 224))


def _with_preprocessing(model, classes, preprocessing):
    """`model` with what it predicts and how its input is made: `.classes`,
    `.preprocessing` and `.transform` (image -> input tensor, see the module docstring)."""
    from alexnet.data.views import ImageTransform

    model.classes = list(classes)
    model.preprocessing = preprocessing
    model.transform = ImageTransform(preprocessing)
    return model


def cifar10_conv_local(pretrained=True):
    """The CIFAR-10 model shipped inside the package (see its model card,
    src/alexnet/pretrained/cifar10-conv-local.json), in eval mode. Its `.classes` and
    `.preprocessing` (stored image size, crop, mean image and channel std) say what it
    expects, and `.transform` makes that input from an image; the package's own
    `alexnet.engine.checkpoint.load_model` gives the same. pretrained=False: the same
    network with fresh weights."""
    from alexnet.engine.checkpoint import load_model
    from alexnet.models import build_model

    loaded = load_model("cifar10-conv-local")
    model = loaded.model if pretrained else \
        build_model(loaded.name, **loaded.model.model_options).eval()
    return _with_preprocessing(model, loaded.classes, loaded.preprocessing)
