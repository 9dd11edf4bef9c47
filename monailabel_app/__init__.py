"""The GazeLabel MONAI Label app and its hardened server.

Layout (the MONAI Label sample-app shape)::

    main.py            GazeLabelApp: infer, train, active-learning and scoring tasks over a case store
    lib/datastores/    local case store and DICOMweb (Orthanc) datastores that refuse unsafe ids and bad files
    lib/infers/        thin infer tasks over ``models.pipeline`` and the per-model predictors
    lib/trainers/      train tasks that run ``gazelabel train <family>`` on the annotators' labels
    lib/activelearning MC-dropout uncertainty strategy
    lib/scoring/       uncertainty scoring stored in the datastore
    server.py          the ASGI app ``monailabel start_server --uvicorn_app monailabel_app.server:app`` serves
    security.py        auth (token / basic) and request guard middleware
    launcher.py        start, wait for and stop a server subprocess; the embedded phantom store bootstrap
    orthanc.py         a throw-away local Orthanc (DICOMweb) for tests and demos

Everything here may import monailabel; ``models/`` never does.
"""
