"""kluis.vault"""
