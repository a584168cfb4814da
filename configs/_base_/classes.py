# CarDD's six classes: the one source of their names, ids and palette
# (`cardd.structures.classes` reads `metainfo` from here), shared by every CarDD
# config whatever model it starts from.

# Registers CarddCocoMetric (COCO AP in COCO's and the CarDD paper's size bins)
# and cardd's hooks.
custom_imports = dict(imports=['cardd.openmmlab.plugins'],
                      allow_failed_imports=False)

# The six classes in label order with their category ids, as in the CarDD JSON
# (`category_ids` is cardd's addition: the ids every output carries).
metainfo = {
    'classes': ('dent', 'scratch', 'crack', 'glass shatter', 'lamp broken',
                'tire flat'),
    'palette': [(230, 25, 75), (255, 225, 25), (0, 130, 200), (60, 180, 75),
                (245, 130, 48), (145, 30, 180)],
    'category_ids': (1, 2, 3, 4, 5, 6),
}
