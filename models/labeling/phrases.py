"""Phrase lists for the CheXpert-14 labeler: mentions, exclusions, negation and uncertainty cues.

Written for GazeLabel after the CheXpert labeler's approach (stanfordmlgroup/chexpert-labeler, MIT): match
mention phrases per observation, drop "unmentions" that overlap a mention but mean something else, then
classify each mention as positive, negated or uncertain. The lists are ours and shorter than CheXpert's;
they cover the wording of IU X-ray reports and of the phantom's reports.

All phrases are lower case; a phrase matches whole words, and a trailing ``*`` lets the last word be a
prefix ("atelecta*" matches "atelectasis", "atelectatic").
"""

from __future__ import annotations

MENTIONS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        "cardiomediastinal enlargement", "enlarged cardiomediastin*", "widened mediastinum", "mediastinal widening",
        "mediastinum is widened", "mediastinum is enlarged", "widening of the mediastinum", "enlarged mediastinum",
        "mediastinal enlargement", "cardiomediastinal silhouette*", "cardiomediastinal contour*",
        "mediastinal silhouette*", "mediastinal contour*", "cardiomediastinum", "mediastinum",
        "hilar and mediastinal contour*", "superior mediastinum",
    ),
    "Cardiomegaly": (
        "cardiomegaly", "heart size", "cardiac size", "size of the heart", "heart is enlarged",
        "enlarged heart", "cardiac enlargement", "enlargement of the heart", "enlarged cardiac silhouette",
        "cardiac silhouette is enlarged", "cardiac silhouette", "cardiac contour*",
        "heart", "cardiac shadow",
    ),
    "Lung Lesion": (
        "nodule*", "nodular*", "mass", "masses", "lesion*", "tumor*", "tumour*", "neoplasm*", "carcinoma",
        "metastas*", "cavitary lesion", "cavitation",
    ),
    "Lung Opacity": (
        "opacit*", "opacification", "infiltrat*", "airspace disease", "air space disease", "airspace process",
        "haziness", "hazy", "density", "densities", "interstitial marking*", "interstitial prominence",
        "interstitial disease", "interstitial process", "ground-glass", "ground glass",
    ),
    "Edema": (
        "edema", "oedema", "vascular congestion", "pulmonary congestion", "congestion", "heart failure",
        "chf", "kerley b lines", "vascular prominence", "cephalization", "pulmonary venous hypertension",
    ),
    "Consolidation": ("consolidat*", "airspace consolidation", "air bronchogram*"),
    "Pneumonia": ("pneumonia", "pneumonitis", "infection", "infectious process", "bronchopneumonia", "aspiration"),
    "Atelectasis": ("atelecta*", "collapse", "volume loss", "subsegmental atelecta*", "linear atelecta*"),
    "Pneumothorax": ("pneumothora*", "pneumothoraces", "hydropneumothorax", "apical lucency"),
    "Pleural Effusion": (
        "pleural effusion*", "effusion*", "pleural fluid", "hydrothorax", "fluid in the pleural space",
        "hydropneumothorax", "blunting", "blunted",
    ),
    "Pleural Other": (
        "pleural thickening", "pleural plaque*", "pleural calcification*", "fibrothorax", "pleural scarring",
        "pleural based", "pleural-based", "pleural abnormalit*", "apical capping", "pleural parenchymal scarring",
    ),
    "Fracture": ("fracture*", "fractured", "fx"),
    "Support Devices": (
        "pacemaker", "pacer", "picc", "central venous catheter", "central line", "catheter", "tube",
        "endotracheal", "et tube", "ng tube", "nasogastric", "feeding tube", "chest tube", "port-a-cath",
        "port", "aicd", "icd", "defibrillator", "lead", "leads", "stent*", "valve replacement", "prosthetic valve",
        "device*", "line", "lines", "drain", "swan-ganz", "tracheostomy", "generator",
    ),
}

# Mentions that are signs rather than the finding itself: uncertain unless negated ("blunting of the
# costophrenic angle" may be fluid or pleural thickening).
HEDGED_MENTIONS: dict[str, tuple[str, ...]] = {"Pleural Effusion": ("blunting", "blunted")}

# Phrases that contain a mention but do not mean the observation; a mention inside one is dropped.
UNMENTIONS: dict[str, tuple[str, ...]] = {
    "Pleural Effusion": ("pericardial effusion", "joint effusion"),
    "Lung Lesion": (
        "soft tissue mass", "breast mass",
        "bone island", "lytic lesion*", "osseous lesion*", "bony lesion*", "sclerotic lesion*",
    ),
    "Lung Opacity": ("bone density", "soft tissue density", "breast density", "nipple shadow*", "osseous density"),
    "Cardiomegaly": ("heart failure",),
    "Support Devices": ("skin line", "skin fold", "pleural line", "lead to", "leads to"),
    "Fracture": (),
    "Enlarged Cardiomediastinum": (),
    "Pneumonia": (),
}

# Other abnormalities: they never produce a CheXpert label but stop "No Finding" from being set.
OTHER_FINDINGS: tuple[str, ...] = (
    "emphysema", "hyperinflat*", "hyperexpan*", "copd", "chronic obstructive", "scoliosis", "kyphosis",
    "degenerative", "spondylosis", "osteopenia", "granuloma*", "calcified nodule*", "calcified granuloma*",
    "calcified lymph node*", "hernia", "tortuous",
    "tortuosity", "ectatic", "ectasia", "calcification*", "calcified", "bronchiectasis", "eventration",
    "scarring", "scar", "fibrosis", "fibrotic", "sternotomy", "clip*", "hardware", "cyst*", "pectus",
    "elevation of the", "elevated", "flattening", "flattened", "osteophyte*", "interstitial lung disease",
    "aneurysm", "deformity", "atherosclerotic", "atherosclerosis", "postsurgical", "postoperative",
)

# CXR hedges ConText's default English rules lack (POSSIBLE_EXISTENCE, modify the following mention).
UNCERTAINTY_FORWARD: tuple[str, ...] = (
    "may", "may represent", "likely", "most likely", "probable", "probably", "possible", "possibly",
    "cannot exclude", "cannot rule out", "can not rule out",
    "suggestive of", "suggest", "suggests", "suspicious for", "suspected", "concerning for", "questionable",
    "versus", "vs", "compatible with", "consistent with", "could represent", "might",
    "differential", "borderline", "borderline enlarged", "equivocal", "atypical", "presumed", "question of", "worrisome for",
    "favor", "favored", "may reflect", "cannot be ruled out",
)
# Hedges that follow the mention ("... atelectasis versus pneumonia", "... is likely").
UNCERTAINTY_BACKWARD: tuple[str, ...] = (
    "is possible", "is not excluded", "cannot be excluded", "can not be excluded", "not excluded",
    "is suspected", "are suspected", "is likely", "is questioned", "versus", "vs",
)
# Hedges that go both ways ("the heart may be enlarged", "may be atelectasis").
UNCERTAINTY_BIDIRECTIONAL: tuple[str, ...] = ("may be", "could be", "might be")
# Negations ConText lacks or that matter most in CXR text.
NEGATION_FORWARD: tuple[str, ...] = (
    "no", "not", "without", "negative for", "free of", "no evidence of", "no signs of", "no definite",
    "no focal", "no acute", "no large", "denies", "absent", "no suspicious", "none", "no visible", "no visualized", "no significant", "no obvious",
    "resolution of", "resolved", "clear of", "absence of", "there is no", "there are no", "no new",
    "rather than", "removal of", "interval removal of",
)
NEGATION_BACKWARD: tuple[str, ...] = (
    "within normal limits", "are within normal limits", "not seen", "is not seen", "are not seen",
    "not identified", "is not identified", "not present", "has resolved", "have resolved", "resolved",
    "is removed", "has been removed", "have been removed", "were removed", "was removed", "not visualized", "is not visualized",
)

# Mentions that are neutral anatomy words: they count only when the sentence calls the structure abnormal
# ("enlarged", "widened") or a size-only cue negates them ("heart size is normal", "mediastinum unchanged").
ANATOMY_MENTIONS: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": ("heart size", "cardiac size", "size of the heart", "cardiac silhouette", "cardiac contour*",
                     "heart", "cardiac shadow"),
    "Enlarged Cardiomediastinum": ("cardiomediastinal silhouette*", "cardiomediastinal contour*",
                                   "mediastinal silhouette*", "mediastinal contour*", "cardiomediastinum",
                                   "mediastinum", "hilar and mediastinal contour*", "superior mediastinum"),
    "Lung Opacity": ("interstitial marking*",),
}
ABNORMAL_SIZE_WORDS: frozenset[str] = frozenset({
    "enlarged", "enlargement", "large", "widened", "widening", "prominent", "prominence", "increased",
    "cardiomegaly", "abnormal", "coarse", "coarsened", "accentuated",
})
# Size/appearance-only cues: they negate anatomy mentions and nothing else ("the left effusion is
# unchanged" is still an effusion; "cardiomegaly, no acute cardiopulmonary abnormality" is cardiomegaly).
ANATOMY_NEGATIONS_BACKWARD: tuple[str, ...] = (
    "unchanged", "stable", "normal", "is normal", "are normal", "top normal", "upper normal",
    "upper limits of normal", "not widened", "is not widened", "normal in size", "is normal in size",
    "within normal limits for size", "is not enlarged", "are not enlarged", "not enlarged",
    "no acute cardiopulmonary abnormality", "unremarkable", "is unremarkable", "are unremarkable",
)
ANATOMY_NEGATIONS_FORWARD: tuple[str, ...] = ("normal", "upper normal", "top normal", "unremarkable")
# "no change in the effusion" is not a negated effusion.
PSEUDO: tuple[str, ...] = ("no change", "no significant change", "no interval change", "not changed",
                           "no increase", "not only", "no significant interval change")
# Words that end a cue's scope ("no effusion, but there is atelectasis").
TERMINATE: tuple[str, ...] = ("but", "however", "although", "though", "which", "apart from", "aside from",
                              "except", "other than", "otherwise", "with the exception of")
HEART_FAILURE: frozenset[str] = frozenset({"chf", "heart failure", "congestive heart failure"})
