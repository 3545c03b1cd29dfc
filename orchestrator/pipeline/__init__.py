"""The video pipeline: decode → detect → boxes over time → matte / inpaint → encode."""
