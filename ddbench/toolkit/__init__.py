"""Shared torch code for plugins: the pieces methods and tasks build on, public so that
third-party plugins reuse them instead of copying them.

Import the modules you need (``from ddbench.toolkit.train import fit``); importing this
package imports nothing, so a plugin's ``__init__`` may name the toolkit without
importing torch. The host (``ddbench`` outside this package) never imports it, and it
never imports a plugin.

==================  ==========================================================================
``augment``         crop + flip for training on real data (``train_augment``), Differentiable
                    Siamese Augmentation (``DSA``, ``DSAParams``), Barlow Twins views
                    (``barlow_twins_views``; needs kornia)
``nn``              ``Network`` (the trunk + head contract every architecture returns) and
                    ``fused_embed`` (eval-mode features with BatchNorm folded into the convs)
``train``           the one training loop ``fit`` and its update ``train_step``: batches,
                    optional augmentation, loss, optimiser/scheduler step, NaN/inf check
                    (``DivergenceError``), progress, per-epoch checkpoint callback;
                    ``batches``, ``steps_per_epoch``, ``warmup_cosine_lr``
``recipes``         the protocol's pre-training recipes (``Recipe``, ``RECIPES``,
                    ``get_recipe``) and ``pretrain`` on a distilled set; ``build_network``,
                    ``seed_global``
``finetune``        ``finetune`` on a labelled target, ``predict``, ``accuracy``
``transfer``        pre-train then fine-tune on targets, shared by the transfer-style tasks:
                    ``resolve_backbone``, ``pretrained``, ``prepare_targets``, ``finetune_on``,
                    ``arch_facts``, ``check_set``, seed offsets per target
``lars``            LARS on SGD: ``param_groups``, ``lars_sgd``, ``lars_adapt``
``probe``           ``linear_probe``: logistic regression on frozen features
``krr``             kernel ridge regression: ``krr_solve``, ``krr_predict``
``pool``            ``ModelPool``: online models at many stages of training (KRR-ST's pool)
``matching``        what matching distillers share (DSA, DM): per-class real batches
                    (``ClassBatches``), real initialisation, the layer-wise gradient distance
                    (``gradient_match_distance``), per-class gradients, the mean-embedding
                    distance, fresh seeded networks, the learned hard-label set
``imageloop``       ``run_loop``: the checkpointed, resumable outer loop of a method that
                    learns its set step by step (progress with ETA, NaN/inf check, cost)
``subsets``         real-image selection: ``class_indices``, ``per_class_quota``,
                    ``initial_draw`` (KRR-ST's class-agnostic initial draw for a seed),
                    ``subset_set`` (indices -> hard-label or representation set)
``plots``           ``image_grid_png``, ``loss_curve_png``, ``write_set_outputs``
==================  ==========================================================================
"""
