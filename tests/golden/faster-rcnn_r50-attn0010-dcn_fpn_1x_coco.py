# Written by `ablation plan` from coco-1x.toml: edit the sweep, not this file.
# cell faster-rcnn_r50-attn0010-dcn_fpn_1x_coco  id 59989c6aff33
# attention 0010: key content only; DCN on
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(
    imports=['ablation.model.attention'],
    allow_failed_imports=False,
)

model = dict(
    backbone=dict(
        plugins=[
            dict(
                cfg=dict(
                    type='AblationGeneralizedAttention',
                    spatial_range=-1,
                    num_heads=8,
                    kv_stride=2,
                    attention_type='0010',
                ),
                stages=(False, False, True, True),
                position='after_conv2',
            ),
        ],
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
    ),
)

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root='data/coco/',
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
    ),
)

val_dataloader = dict(
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root='data/coco/',
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
    ),
)

test_dataloader = val_dataloader

val_evaluator = dict(ann_file='data/coco/annotations/instances_val2017.json')

test_evaluator = val_evaluator

train_cfg = dict(max_epochs=12, val_interval=1)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=False,
        begin=0,
        end=500,
    ),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1,
    ),
]

optim_wrapper = dict(optimizer=dict(lr=0.02))
