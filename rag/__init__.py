"""Question answering over the Green Silk Road Development Report (2023), Chinese and English."""
