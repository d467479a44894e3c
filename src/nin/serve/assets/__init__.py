"""Files the service ships: sample photos for ImageNet models (see imagenet_samples/LICENSE-sample_data.txt)."""
