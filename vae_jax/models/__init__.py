"""Models as composition: MLP and conv encoders / decoders (mlp.py, conv.py) composed into a VAE,
a deterministic Autoencoder and a conditional CVAE (composites.py), plus a small CNN Classifier
(classifier.py). No losses here (see objectives.py).

Parameters are explicit pytrees: `params = init_params(model, key, image_shape)`, used only
through `model.apply({"params": params}, ...)`. Every autoencoding model has
encode(x, label=None), decode(z, label=None) and __call__(x, key, label=None) (composites.py),
and the attributes latent_dim and num_classes.

Shape letters: B batch, H/W/C image, Z latent size, K classes.
"""

from vae_jax.models.classifier import Classifier
from vae_jax.kernels.col2im import Col2imConvTranspose
from vae_jax.models.composites import CVAE, VAE, Autoencoder
from vae_jax.models.conv import (CONV_RUNS_MODES, PROJECT_ACTIVATIONS, UPSAMPLE_MODES,
                                 ConvDecoder, ConvEncoder, PhaseConvTranspose, resolve_batch_chunks,
                                 resolve_loop_runs, resolve_upsample)
from vae_jax.models.factory import (ENCODER_KINDS, LABELLED_KINDS, MODEL_KINDS, PRIORS,
                                    build_model, init_params, is_user_kind, mlp_model,
                                    param_count, user_module)
from vae_jax.models.layers import (DENSE_INITS, MLP, TRANSPOSE_FANS, ConvStack, ConvTranspose,
                                   dense)
from vae_jax.models.hierarchical import INFERENCE, HierarchicalVAE
from vae_jax.models.multimodal import MultimodalVAE
from vae_jax.models.mlp import CODE_HEADS, POSTERIOR_HEADS, MLPDecoder, MLPEncoder
from vae_jax.models.vampprior import VampPriorVAE
from vae_jax.models.vqvae import VQVAE

__all__ = [
    "Autoencoder", "CODE_HEADS", "CONV_RUNS_MODES", "CVAE", "Classifier", "Col2imConvTranspose",
    "ConvDecoder", "ConvEncoder", "ConvStack", "ConvTranspose", "DENSE_INITS", "ENCODER_KINDS",
    "HierarchicalVAE", "INFERENCE", "LABELLED_KINDS", "MLP", "MLPDecoder", "MultimodalVAE",
    "MLPEncoder", "MODEL_KINDS", "POSTERIOR_HEADS", "PRIORS",
    "PROJECT_ACTIVATIONS",
    "PhaseConvTranspose", "TRANSPOSE_FANS", "UPSAMPLE_MODES", "VAE", "VQVAE", "VampPriorVAE",
    "build_model", "dense", "init_params", "is_user_kind", "mlp_model", "param_count",
    "resolve_batch_chunks", "resolve_loop_runs", "resolve_upsample", "user_module",
]
