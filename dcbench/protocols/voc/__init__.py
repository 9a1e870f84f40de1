"""The VOC transfer protocols' shared pieces: backbone surgery (nets), the detector, the FCN,
the VOC metrics and the fine-tune base every VOC protocol builds on."""
