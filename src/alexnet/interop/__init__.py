"""Running trained networks elsewhere: ONNX / TorchScript / torch.export, torchvision weights."""
