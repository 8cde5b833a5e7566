"""Chat web apps (ChatGPT, Claude, Gemini, ...): the catalog's endpoints as data, field paths,
body decoders that write back, and the classification of one request.

    catalog.py   the web_apps: section of providers.yaml (load_web_apps)
    paths.py     the field-path syntax (compile_path): read and write
    codecs.py    JSON, form, multipart and raw bodies (decode_body)
    classify.py  one request -> WebFacts (endpoint, activity, text, files, account)
    content.py   what DLP reads of an uploaded file
"""
